"""The three evaluations, each returning one result record in CLIP_benchmark's shape:
{'dataset', 'model', 'task', 'metrics', 'language': 'ru', ...} (see results.py to write and report them).

Every image goes through predictor.get_image_latents (features.image_features caches them), every
text through the Predictor's text tower, so the numbers are those of the library users call.
"""
import math
from typing import Optional, Sequence

import numpy as np
import torch

from ..predictor import Predictor
from . import metrics as m
from .classifier import zero_shot_weights
from .datasets import EvalSplit
from .features import image_features
from .linear_probe import fit_probe

CONFUSION_MAX_CLASSES = 102  # results carry the confusion matrix up to this many classes
RECALL_KS = (1, 5, 10)


def evaluate_zeroshot(predictor: Predictor, split: EvalSplit, model: str = '', order: str = 'clip',
                      cache_dir: Optional[str] = None) -> dict:
    """Zero-shot classification of split with its Russian class names and templates.

    Logits are 100 x cosine(image, class weights) (CLIP_benchmark's scale).

    Args:
        predictor: the model to run.
        split: the images, labels, class names and templates (`load_split`'s result).
        model: the model's name, recorded in the result.
        order: 'clip' (each template's latent normalised, averaged per class, renormalised, as CLIP
            and CLIP_benchmark) or 'predictor' (as `Predictor.get_text_latents` and the original).
        cache_dir: a folder caching the split's image latents per model and preprocessing; None
            computes them.

    Returns:
        The result record (see File formats), with metrics acc1, acc5, mean_per_class_recall (and
        roc_auc for two classes), per_class_recall, the confusion_matrix for small class counts,
        order, templates and classnames.

    Raises:
        ValueError: a split without labels, with more labels than class names, an unknown order,
            or an image that cannot be read.
    """
    _check_classification(split)
    weights = zero_shot_weights(predictor, split.classnames, split.templates, order=order)
    latents = image_features(predictor, split, cache_dir)
    logits = 100.0 * (latents @ weights.T).numpy()
    record = _classification_record(split, model, 'zeroshot_classification', logits, split.labels)
    record.update(order=order, templates=list(split.templates), classnames=list(split.classnames))
    return record


def evaluate_linear_probe(predictor: Predictor, train: EvalSplit, test: EvalSplit, model: str = '',
                          protocol: str = 'clip', val: Optional[EvalSplit] = None,
                          cache_dir: Optional[str] = None, seed: int = 0) -> dict:
    """A logistic-regression probe on the image latents of train (and val), scored on test.

    Args:
        predictor: the model to run.
        train: the split the probe is fitted on.
        test: the split it is scored on.
        model: the model's name, recorded in the result.
        protocol: 'clip' (the CLIP paper's: C swept on a validation split, then refit on train +
            validation) or 'simple' (the RuCLIP README's example: sklearn's defaults, fit on train).
        val: the validation split for protocol 'clip'; without it 20% of train, stratified and seeded.
        cache_dir: a folder caching image latents; None computes them.
        seed: the seed of the validation split drawn from train.

    Returns:
        The result record (see File formats) with the classification metrics, protocol, C, sweep,
        train_split, n_train and val_split.

    Raises:
        ValueError: a split without labels, an unknown protocol, or an image that cannot be read.
    """
    for split in (train, test) + ((val,) if val else ()):
        _check_classification(split, need_names=False)
    train_x = image_features(predictor, train, cache_dir).numpy()
    test_x = image_features(predictor, test, cache_dir).numpy()
    val_x = image_features(predictor, val, cache_dir).numpy() if val else None
    probe = fit_probe(train_x, train.labels, test_x, protocol=protocol, val_x=val_x,
                      val_y=val.labels if val else None, seed=seed)
    n_classes = _n_classes(test, train)
    scores = np.full((len(test), n_classes), -np.inf)
    scores[:, probe.classes] = probe.scores
    record = _classification_record(test, model, 'linear_probe', scores, test.labels)
    record.update(protocol=protocol, C=probe.c, sweep=probe.sweep, train_split=train.split, n_train=len(train),
                  val_split=val.split if val else None)
    return record


def evaluate_retrieval(predictor: Predictor, split: EvalSplit, model: str = '', ks: Sequence[int] = RECALL_KS,
                       cache_dir: Optional[str] = None) -> dict:
    """Text to image and image to text recall@k on split's images and captions.

    Captions are encoded as they are, without templates; an image counts as found when any of its
    captions is, as in CLIP_benchmark.

    Args:
        predictor: the model to run.
        split: images with one or more captions each (`load_split('csv' or 'jsonl', ...)`).
        model: the model's name, recorded in the result.
        ks: the k of each recall@k.
        cache_dir: a folder caching image latents; None computes them.

    Returns:
        The result record (see File formats), with metrics `image_retrieval_recall@k` and
        `text_retrieval_recall@k` for each k, and n_texts.

    Raises:
        ValueError: a split without captions, or an image that cannot be read.
    """
    if split.captions is None:
        raise ValueError(f'{split.name} has no captions: retrieval needs (image, caption) data')
    texts = [caption for captions in split.captions for caption in captions]
    owners = [i for i, captions in enumerate(split.captions) for _ in captions]
    if not texts:
        raise ValueError(f'{split.name}: no captions')
    text_latents = predictor.get_caption_latents(texts).float().cpu()
    latents = image_features(predictor, split, cache_dir)
    similarity = (text_latents @ latents.T).numpy()  # [n_texts, n_images]
    return _record(split, model, 'zeroshot_retrieval', m.retrieval_recall(similarity, owners, ks),
                   n_texts=len(texts))


def text_embeddings(predictor: Predictor, sentences: Sequence[str]) -> torch.Tensor:
    """Text-tower latents of sentences as they are, for sentence-embedding benchmarks.

    No template, nothing lowercased, no image tower involved; compare them by dot product
    (= cosine).

    Args:
        predictor: the model to run.
        sentences: the sentences, at least one.

    Returns:
        `[n, embed_dim]` float32 CPU tensor, L2-normalised.

    Raises:
        ValueError: sentences is empty.
        TypeError: sentences is one str, or holds something other than str.
    """
    return predictor.get_caption_latents(sentences).float().cpu()


def _classification_record(split: EvalSplit, model: str, task: str, logits: np.ndarray, targets) -> dict:
    targets = np.asarray(targets)
    predictions = logits.argmax(1)
    n_classes = logits.shape[1]
    values = m.classification_metrics(np.where(np.isfinite(logits), logits, -1e30), targets)
    recalls = [None if math.isnan(r) else r for r in m.per_class_recall(predictions, targets, n_classes)]
    extra = {'per_class_recall': recalls, 'n_classes': n_classes}
    if n_classes <= CONFUSION_MAX_CLASSES:
        extra['confusion_matrix'] = m.confusion_matrix(predictions, targets, n_classes).tolist()
    if split.classes:
        extra['classes'] = list(split.classes)
    return _record(split, model, task, values, **extra)


def _record(split: EvalSplit, model: str, task: str, metrics: dict, **extra) -> dict:
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}
    return dict(dataset=split.name, model=model, task=task, metrics=clean, language='ru', split=split.split,
                n_images=len(split), main_metric=split.metric, **extra)


def _n_classes(*splits: EvalSplit) -> int:
    named = [len(s.classes) for s in splits if s.classes] + [len(s.classnames) for s in splits if s.classnames]
    return max(named + [max(s.labels) + 1 for s in splits])


def _check_classification(split: EvalSplit, need_names: bool = True) -> None:
    if split.labels is None:
        raise ValueError(f'{split.name} has no class labels: classification needs (image, label) data')
    if len(split.labels) != len(split.images):
        raise ValueError(f'{split.name}: {len(split.labels)} labels for {len(split.images)} images')
    if need_names and len(split.classnames) <= max(split.labels):
        raise ValueError(f'{split.name}: label {max(split.labels)} but only {len(split.classnames)} class names')
