"""The named protocols' metrics: each against a value computed by hand on known latents, through
the whole protocol (loader, feature cache, record), and against CLIP_benchmark's own retrieval code."""
import math
import os

import numpy as np
import pytest
import torch

from benchmark_layouts import BABEL_CLASSES, XM3600_ROWS, write_babel_imagenet, write_coco_sm, write_xm3600, write_xtd10
from helpers.eval_data import CLASSNAMES
from ruclip.evaluation import metrics, protocols
from ruclip.identity import ModelIdentity


class KnownLatents:
    """A model whose latents are given: a text's is that of the first key it contains, an image's
    that of its file name (or of its position, for encoded bytes)."""

    def __init__(self, texts: dict, images: dict):
        self.texts, self.images = texts, images
        dim = len(next(iter(texts.values())))
        self.identity = ModelIdentity(fingerprint='known-latents', embed_dim=dim, backend='torch', dtype='float32',
                                      image_size=0, mean=(), std=(), name='known')

    def get_caption_latents(self, texts):
        rows = [next(vector for key, vector in self.texts.items() if key in text) for text in texts]
        return _unit(rows)

    def get_image_latents(self, images, progress=None):
        return _unit([self.images[os.path.basename(image) if isinstance(image, str) else i]
                      for i, image in enumerate(images)])


def _unit(rows):
    latents = torch.tensor(rows, dtype=torch.float32)
    return latents / latents.norm(dim=1, keepdim=True)


def test_xm3600_immich_mean_of_text_to_image_recalls_by_hand(tmp_path):
    root = write_xm3600(tmp_path / 'xm3600')
    first = [captions[0] for _, captions in XM3600_ROWS]
    # image i's latent is e_i; caption i points at image i but ranks it 1st, 2nd, 3rd and 4th of 4
    images = {f'{key}.jpg': np.eye(4)[i].tolist() for i, (key, _) in enumerate(XM3600_ROWS)}
    texts = {first[0]: [1, .1, .1, .1], first[1]: [.9, .5, .1, .1], first[2]: [.9, .8, .5, .1],
             first[3]: [.9, .8, .7, .5]}
    record = protocols.evaluate_protocol(KnownLatents(texts, images), 'xm3600-immich', root, model_name='known')
    # recall@1 = 1/4, recall@5 = recall@10 = 1: immich's figure is their mean
    assert record['metrics']['image_retrieval_recall@1'] == 0.25
    assert record['metrics'][protocols.IMMICH_MEAN] == pytest.approx((0.25 + 1 + 1) / 3)
    # NDCG@10 with one relevant image: 1/log2(1 + rank), averaged
    assert record['metrics']['image_retrieval_ndcg@10'] == pytest.approx(
        np.mean([1 / math.log2(1 + rank) for rank in (1, 2, 3, 4)]))
    assert record['protocol'] == 'xm3600-immich' and record['main_metric'] == protocols.IMMICH_MEAN
    assert record['model_identity']['fingerprint'] == 'known-latents'


def test_retrieval_ndcg_cuts_at_k_by_hand():
    similarity = [[.9, .1, .0], [.9, .5, .0], [.9, .8, .1]]  # own image ranked 1st, 2nd, 3rd
    assert metrics.retrieval_ndcg(similarity, [0, 1, 2], k=2) == pytest.approx((1 + 1 / math.log2(3) + 0) / 3)


def test_ranking_ndcg_against_the_reference_ranking_by_hand():
    reference = np.log([[0.5, 0.3, 0.2]])  # with temperature 1, relevances 0.5, 0.3, 0.2
    russian = [[0.4, 0.9, 0.1]]  # ranks candidate 1, then 0
    expected = (0.3 + 0.5 / math.log2(3)) / (0.5 + 0.3 / math.log2(3))
    assert metrics.ranking_ndcg(russian, reference, k=2, temperature=1.0) == pytest.approx(expected)
    assert metrics.ranking_ndcg(reference, reference, k=2, temperature=1.0) == pytest.approx(1.0)


def test_coco_sm_averages_the_translations_and_compares_with_english(tmp_path):
    root = write_coco_sm(tmp_path / 'coco_sm')
    english = ['red', 'green', 'blue', 'yellow']
    vectors = np.eye(4) + 0.05
    texts = {**{word: vectors[i].tolist() for i, word in enumerate(CLASSNAMES)},
             **{word: vectors[i].tolist() for i, word in enumerate(english)}}
    images = {f'COCO_val2014_{i:012d}.jpg': np.eye(4)[i].tolist() for i in range(4)}
    record = protocols.evaluate_protocol(KnownLatents(texts, images), 'coco-sm', root)
    assert record['split'] == 'google+bing+nllb' and set(record['per_split']) == {'google', 'bing', 'nllb'}
    assert record['metrics']['image_retrieval_recall@1'] == 1.0 and record['metrics']['text_retrieval_recall@1'] == 1.0
    # the same latents in both languages: the rankings agree, NDCG@20 is 1
    assert record['metrics']['image_retrieval_ndcg@20'] == pytest.approx(1.0)
    assert record['metrics']['text_retrieval_ndcg@20'] == pytest.approx(1.0)
    # English texts that point elsewhere: NDCG below 1, recall (Russian) unchanged
    swapped = dict(texts, red=vectors[1].tolist(), green=vectors[0].tolist())
    other = protocols.evaluate_protocol(KnownLatents(swapped, images), 'coco-sm', root)
    assert other['metrics']['image_retrieval_ndcg@20'] < 0.99 and other['metrics']['image_retrieval_recall@1'] == 1.0


def test_babel_imagenet_accuracy_by_hand(tmp_path):
    root = write_babel_imagenet(tmp_path, per_class=2)
    texts = {word: np.eye(4)[i].tolist() for i, word in enumerate(CLASSNAMES)}
    images = {}
    for position, index in enumerate(BABEL_CLASSES):
        for name in os.listdir(tmp_path / 'val' / f'n{index:08d}'):
            images[name] = np.eye(4)[position].tolist()
    # two of the eight images (both of the last class) look like class 0: accuracy 6/8
    for name in os.listdir(tmp_path / 'val' / 'n00000999'):
        images[name] = np.eye(4)[0].tolist()
    for protocol in ('babel-imagenet', 'babel-imagenet-label'):
        record = protocols.evaluate_protocol(KnownLatents(texts, images), protocol, root)
        assert record['metrics']['acc1'] == 0.75 and record['main_metric'] == 'acc1'
        assert record['protocol'] == protocol


def test_xtd10_headline_is_text_to_image_recall_at_10(tmp_path):
    root = write_xtd10(tmp_path / 'xtd10')
    texts = {word: np.eye(4)[i].tolist() for i, word in enumerate(CLASSNAMES)}
    images = {f'COCO_train2014_{i:012d}.jpg': np.eye(4)[(i + 1) % 4].tolist() for i in range(4)}
    record = protocols.evaluate_protocol(KnownLatents(texts, images), 'xtd10', root)
    assert record['main_metric'] == 'image_retrieval_recall@10'
    assert record['metrics']['image_retrieval_recall@1'] == 0.0
    assert record['metrics']['image_retrieval_recall@10'] == 1.0


def test_unknown_protocol_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match='xm3600-immich'):
        protocols.evaluate_protocol(None, 'xm3600', tmp_path)


def test_recall_matches_clip_benchmarks_own_implementation():
    """CLIP_benchmark's zeroshot_retrieval.evaluate on the same latents (its model and dataloader
    stand-ins return them by index) gives our image/text_retrieval_recall@k, hence immich's mean."""
    retrieval = pytest.importorskip('clip_benchmark.metrics.zeroshot_retrieval')
    rng = np.random.default_rng(0)
    n_images, per_image, dim = 12, 2, 8
    image_latents = torch.tensor(rng.normal(size=(n_images, dim)), dtype=torch.float32)
    text_latents = image_latents.repeat_interleave(per_image, 0) + torch.tensor(
        rng.normal(scale=1.2, size=(n_images * per_image, dim)), dtype=torch.float32)

    class Model(torch.nn.Module):
        def encode_image(self, index):
            return image_latents[index]

        def encode_text(self, index):
            return text_latents[index]

    batches = [(torch.arange(start, start + 4), [[f'{i * per_image + j}' for j in range(per_image)]
                                                 for i in range(start, start + 4)]) for start in range(0, n_images, 4)]
    theirs = retrieval.evaluate(Model(), batches, lambda texts: torch.tensor([int(t) for t in texts]), 'cpu',
                                amp=False, recall_k_list=[1, 5, 10])
    images = image_latents / image_latents.norm(dim=1, keepdim=True)
    texts = text_latents / text_latents.norm(dim=1, keepdim=True)
    ours = metrics.retrieval_recall((texts @ images.T).numpy(), np.repeat(np.arange(n_images), per_image))
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value), key
    assert 0 < ours['image_retrieval_recall@1'] < 1  # the data discriminate


def test_babel_imagenet_matches_clip_benchmarks_zero_shot_classification(tmp_path):
    """CLIP_benchmark's zeroshot_classification.evaluate (its classifier: each template's latent
    normalised, averaged, renormalised) on the same known latents gives the protocol's metrics."""
    classification = pytest.importorskip('clip_benchmark.metrics.zeroshot_classification')
    root = write_babel_imagenet(tmp_path, per_class=3)
    rng = np.random.default_rng(1)
    split = protocols.load_split('babel_imagenet', root)
    texts = [template.format(name) for name in split.classnames for template in split.templates]
    text_latents = torch.tensor(rng.normal(size=(len(texts), 6)), dtype=torch.float32)
    image_latents = torch.tensor(rng.normal(size=(len(split.images), 6)), dtype=torch.float32)
    model = KnownLatents(dict(zip(texts, text_latents.tolist())),
                         {os.path.basename(path): row for path, row in zip(split.images, image_latents.tolist())})
    model.get_caption_latents = lambda batch: _unit([model.texts[text] for text in batch])  # exact texts
    ours = protocols.evaluate_protocol(model, 'babel-imagenet', root)['metrics']

    class Model(torch.nn.Module):
        def encode_image(self, index):
            return image_latents[index]

        def encode_text(self, index):
            return text_latents[index]

    labels = torch.tensor(split.labels)
    batches = [(torch.arange(start, min(start + 5, len(labels))), labels[start:start + 5])
               for start in range(0, len(labels), 5)]
    tokenizer = lambda batch: torch.tensor([texts.index(text) for text in batch])  # noqa: E731
    # its evaluate() ends in accuracy(), which NumPy 2 breaks (float() of a 1-element array): run its two stages
    templates = [t.replace('{}', '{c}') for t in split.templates]  # CLIP_benchmark's placeholder
    classifier = classification.zero_shot_classifier(Model(), tokenizer, split.classnames, templates, 'cpu', amp=False)
    logits, target = classification.run_classification(Model(), classifier, batches, 'cpu', amp=False)
    predictions = logits.argmax(1)
    assert ours['acc1'] == pytest.approx((predictions == target).float().mean().item())
    recalls = [(predictions[target == c] == c).float().mean().item() for c in target.unique()]
    assert ours['mean_per_class_recall'] == pytest.approx(float(np.mean(recalls)))
    assert 0 < ours['acc1'] < 1  # random latents: some right, some wrong
