"""Metrics as CLIP's paper and CLIP_benchmark compute them, on numpy arrays; no model needed.

Classification: top-k accuracy, mean per-class recall (sklearn's balanced accuracy), ROC-AUC of a
binary task, the confusion matrix. Retrieval: recall@k both ways, an image counting as found when
any one of its captions is (CLIP_benchmark's image_retrieval_recall@k / text_retrieval_recall@k).
"""
import math
from typing import Dict, Sequence

import numpy as np


def top_k_accuracy(logits, targets, k: int) -> float:
    """The fraction of rows whose target is among the k highest logits (ties: the lower index first)."""
    logits, targets = _logits_targets(logits, targets)
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind='stable')[:, :k]
    return float((top == targets[:, None]).any(axis=1).mean())


def mean_per_class_recall(predictions, targets) -> float:
    """The mean over the classes present in targets of the fraction of their items predicted right."""
    predictions, targets = np.asarray(predictions), np.asarray(targets)
    recalls = [(predictions[targets == c] == c).mean() for c in np.unique(targets)]
    return float(np.mean(recalls))


def per_class_recall(predictions, targets, n_classes: int):
    """[n_classes] recall of each class; NaN for a class with no items."""
    predictions, targets = np.asarray(predictions), np.asarray(targets)
    return [float((predictions[targets == c] == c).mean()) if (targets == c).any() else math.nan
            for c in range(n_classes)]


def roc_auc(scores, targets) -> float:
    """Area under the ROC curve of scores for the positive class (target 1): the probability that a
    random positive scores above a random negative, ties counting a half."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets)
    positive, negative = scores[targets == 1], scores[targets == 0]
    if len(positive) == 0 or len(negative) == 0 or len(positive) + len(negative) != len(targets):
        raise ValueError('ROC-AUC needs targets of 0 and 1 only, with both present')
    order = np.argsort(scores, kind='mergesort')
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):  # average ranks over ties
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    positive_ranks = ranks[targets == 1].sum()
    return float((positive_ranks - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


def confusion_matrix(predictions, targets, n_classes: int) -> np.ndarray:
    """[n_classes, n_classes] counts: row = true class, column = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(targets), np.asarray(predictions)), 1)
    return matrix


def classification_metrics(logits, targets) -> Dict[str, float]:
    """acc1, acc5 (NaN under 5 classes, as CLIP_benchmark) and mean_per_class_recall; for two
    classes also roc_auc of the second class's softmax probability."""
    logits, targets = _logits_targets(logits, targets)
    n_classes = logits.shape[1]
    metrics = {'acc1': top_k_accuracy(logits, targets, 1),
               'acc5': top_k_accuracy(logits, targets, 5) if n_classes >= 5 else math.nan,
               'mean_per_class_recall': mean_per_class_recall(logits.argmax(1), targets)}
    if n_classes == 2 and len(np.unique(targets)) == 2:
        metrics['roc_auc'] = roc_auc(logits[:, 1] - logits[:, 0], targets)  # monotone in the softmax
    return metrics


def retrieval_recall(similarity, text_image: Sequence[int], ks: Sequence[int] = (1, 5, 10)) -> Dict[str, float]:
    """similarity: [n_texts, n_images]; text_image[t]: the image caption t describes.

    image_retrieval_recall@k: the fraction of texts whose image is among the k images closest to it;
    text_retrieval_recall@k: the fraction of images with at least one caption among the k closest texts.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    text_image = np.asarray(text_image)
    n_texts, n_images = similarity.shape
    if len(text_image) != n_texts:
        raise ValueError(f'text_image has {len(text_image)} entries for {n_texts} texts')
    positive = np.zeros((n_texts, n_images), dtype=bool)
    positive[np.arange(n_texts), text_image] = True
    metrics = {}
    for k in ks:
        metrics[f'image_retrieval_recall@{k}'] = hit_rate(similarity, positive, k)
        metrics[f'text_retrieval_recall@{k}'] = hit_rate(similarity.T, positive.T, k)
    return metrics


def hit_rate(scores: np.ndarray, positive: np.ndarray, k: int) -> float:
    """The fraction of rows with a positive among their k highest scores."""
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind='stable')[:, :k]
    return float(np.take_along_axis(positive, top, axis=1).any(axis=1).mean())


def _logits_targets(logits, targets):
    logits, targets = np.asarray(logits, dtype=np.float64), np.asarray(targets)
    if logits.ndim != 2 or targets.shape != (logits.shape[0],):
        raise ValueError(f'logits must be [n, n_classes] and targets [n], got {list(logits.shape)} and '
                         f'{list(targets.shape)}')
    return logits, targets


def retrieval_ndcg(similarity, text_image: Sequence[int], k: int = 10) -> float:
    """Text -> image NDCG@k with one relevant image per text (mteb's ndcg_at_10 for XM3600T2IRetrieval):
    the mean over texts of 1 / log2(1 + rank of its image) when that rank is at most k, else 0."""
    similarity = np.asarray(similarity, dtype=np.float64)
    text_image = np.asarray(text_image)
    if len(text_image) != similarity.shape[0]:
        raise ValueError(f'text_image has {len(text_image)} entries for {similarity.shape[0]} texts')
    own = similarity[np.arange(len(text_image)), text_image]
    # ties: the image counts as ranked after every other image with the same score (stable order, lower index first)
    above = (similarity > own[:, None]).sum(1)
    tied_before = ((similarity == own[:, None]) & (np.arange(similarity.shape[1]) < text_image[:, None])).sum(1)
    rank = above + tied_before + 1
    return float(np.where(rank <= k, 1.0 / np.log2(1.0 + rank), 0.0).mean())


def ranking_ndcg(similarity, reference_similarity, k: int = 20, temperature: float = 100.0) -> float:
    """COCO-SM's NDCG@k of one language's ranking against English's (unum-cloud/coco-sm eval.py):
    each query's relevances are the softmax of temperature x its English similarities; the gain of
    the query's top k under the other language, discounted by log2(position + 1), over the gain of
    English's own top k. similarity and reference_similarity: [n_queries, n_candidates], query i
    the same caption (or image) in both."""
    similarity = np.asarray(similarity, dtype=np.float64)
    reference = np.asarray(reference_similarity, dtype=np.float64)
    if similarity.shape != reference.shape:
        raise ValueError(f'similarity {list(similarity.shape)} and reference {list(reference.shape)} differ in shape')
    k = min(k, similarity.shape[1])
    logits = temperature * reference
    relevance = np.exp(logits - logits.max(1, keepdims=True))
    relevance /= relevance.sum(1, keepdims=True)
    discount = 1.0 / np.log2(np.arange(2, k + 2))

    def gain(scores):
        top = np.argsort(-scores, axis=1, kind='stable')[:, :k]
        return (np.take_along_axis(relevance, top, axis=1) * discount).sum(1)

    return float((gain(similarity) / gain(reference)).mean())
