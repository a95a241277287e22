"""Named protocols: each published table's figure computed its way, so that a ruclip result is only
ever put beside published figures of the same protocol (published_peers.json).

protocol              data            headline metric (others in the record too)
xm3600-immich         xm3600          mean of text->image recall@1, @5, @10, first caption per image
                                      (immich's "Recall (%)": open_clip's multilingual retrieval results,
                                      made with CLIP_benchmark's crossmodal3600)
xm3600-mteb           xm3600_mteb     text->image NDCG@10 over every caption (MIEB/mteb XM3600T2IRetrieval)
xtd10                 xtd10           text->image recall@10 (1000 images, one caption each)
coco-sm               coco_sm         text->image recall@1; recall@1/5/10 both ways and NDCG@20 of the
                                      Russian ranking against the English one, each the mean over the
                                      google, bing and nllb translations (unum-cloud/coco-sm eval.py)
babel-imagenet        babel_imagenet  zero-shot accuracy over the 748 Russian classes, NLLB templates
babel-imagenet-label  babel_imagenet_label  the same with the bare label as the prompt

"image_retrieval" is retrieving images from a text (text->image), "text_retrieval" the converse,
as CLIP_benchmark names them. evaluate_protocol takes any model with the harness's interface
(ruclip.evaluation.models.DualEncoder: a ruclip.Predictor, or a peer adapter).
"""
import json
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import harness
from . import metrics as m
from .datasets import EvalSplit, load_split
from .features import image_features

PUBLISHED_PEERS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'published_peers.json')
IMMICH_MEAN = 'mean_image_retrieval_recall@1,5,10'
RECALL_KS = (1, 5, 10)


@dataclass(frozen=True)
class Protocol:
    name: str
    dataset: str  # the loader's name (benchmarks.NAMES)
    headline: str  # the metric the published table gives
    task: str  # 'zeroshot_retrieval' or 'zeroshot_classification'
    splits: Tuple[Optional[str], ...] = (None,)  # scored separately and averaged
    description: str = ''


PROTOCOLS: Dict[str, Protocol] = {p.name: p for p in (
    Protocol('xm3600-immich', 'xm3600', IMMICH_MEAN, 'zeroshot_retrieval',
             description='Crossmodal-3600, first Russian caption per image (CLIP_benchmark); the mean of '
                         'text->image recall@1, @5 and @10 (immich)'),
    Protocol('xm3600-mteb', 'xm3600_mteb', 'image_retrieval_ndcg@10', 'zeroshot_retrieval',
             description='Crossmodal-3600, every Russian caption (the Hub parquet MIEB/mteb read); '
                         'text->image NDCG@10 (mteb XM3600T2IRetrieval)'),
    Protocol('xtd10', 'xtd10', 'image_retrieval_recall@10', 'zeroshot_retrieval',
             description='XTD10 Russian, 1000 COCO images with one caption each; text->image recall@10'),
    Protocol('coco-sm', 'coco_sm', 'image_retrieval_recall@1', 'zeroshot_retrieval', ('google', 'bing', 'nllb'),
             description='COCO Karpathy test (4993 images) machine-translated to Russian by Google, Bing and '
                         'NLLB; recall@k both ways and NDCG@20 against the English ranking, averaged over the '
                         'three translations (unum-cloud/coco-sm)'),
    Protocol('babel-imagenet', 'babel_imagenet', 'acc1', 'zeroshot_classification',
             description='ImageNet val, the 748 classes with a Russian BabelNet label; NLLB-translated '
                         'templates (Babel-ImageNet)'),
    Protocol('babel-imagenet-label', 'babel_imagenet_label', 'acc1', 'zeroshot_classification',
             description='as babel-imagenet, the bare label as the prompt'),
)}


def evaluate_protocol(model, protocol: str, root, model_name: str = '', cache_dir: Optional[str] = None,
                      download: bool = False) -> dict:
    """The result record of `model` under the named protocol on its data under root: the
    harness's record shape plus protocol, the headline metric as main_metric, and model_identity."""
    if protocol not in PROTOCOLS:
        raise ValueError(f'unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}')
    spec = PROTOCOLS[protocol]
    root = os.fspath(root)
    if spec.task == 'zeroshot_classification':
        split = load_split(spec.dataset, root, download=download)
        record = harness.evaluate_zeroshot(model, split, model_name, cache_dir=cache_dir)
    else:
        splits = [load_split(spec.dataset, root, name, download=download) for name in spec.splits]
        record = _retrieval(model, splits, model_name, cache_dir, with_reference=protocol == 'coco-sm')
    if spec.headline == IMMICH_MEAN:
        record['metrics'][IMMICH_MEAN] = float(np.mean([record['metrics'][f'image_retrieval_recall@{k}']
                                                         for k in RECALL_KS]))
    record.update(protocol=protocol, main_metric=spec.headline, model_identity=model.identity.to_dict())
    return record


def _retrieval(model, splits: List[EvalSplit], model_name: str, cache_dir: Optional[str],
               with_reference: bool) -> dict:
    """Recall@1/5/10 both ways and text->image NDCG@10 of each split, averaged over the splits
    (which share their images); with_reference: also NDCG@20 against the English captions' ranking."""
    first = splits[0]
    if any(split.images != first.images for split in splits[1:]):
        raise ValueError(f'{first.name}: the translations do not list the same images in the same order')
    latents = image_features(model, first, cache_dir)
    per_split = []
    for split in splits:
        texts, owners = _flatten(split.captions, split.name)
        similarity = (model.get_caption_latents(texts).float().cpu() @ latents.T).numpy()  # [n_texts, n_images]
        values = m.retrieval_recall(similarity, owners, RECALL_KS)
        values['image_retrieval_ndcg@10'] = m.retrieval_ndcg(similarity, owners, 10)
        if with_reference:
            reference_texts, reference_owners = _flatten(split.reference_captions, f'{split.name} (English)')
            if reference_owners != owners:
                raise ValueError(f'{split.name}: the English captions do not pair up with the Russian ones')
            reference = (model.get_caption_latents(reference_texts).float().cpu() @ latents.T).numpy()
            values['image_retrieval_ndcg@20'] = m.ranking_ndcg(similarity, reference, 20)
            values['text_retrieval_ndcg@20'] = m.ranking_ndcg(similarity.T, reference.T, 20)
        per_split.append(values)
    metrics = {key: float(np.mean([values[key] for values in per_split])) for key in per_split[0]}
    record = dict(dataset=first.name, model=model_name, task='zeroshot_retrieval', metrics=metrics, language='ru',
                  split='+'.join(split.split for split in splits), n_images=len(first),
                  n_texts=sum(len(c) for c in first.captions))
    if len(splits) > 1:
        record['per_split'] = {split.split: values for split, values in zip(splits, per_split)}
    return record


def _flatten(captions, name: str):
    if not captions:
        raise ValueError(f'{name} has no captions')
    texts = [text for group in captions for text in group]
    owners = [i for i, group in enumerate(captions) for _ in group]
    return texts, owners


def published_peers() -> dict:
    """published_peers.json: for each protocol its source and entries {model, run_as, metrics}."""
    with open(PUBLISHED_PEERS_FILE, encoding='utf-8') as file:
        return json.load(file)
