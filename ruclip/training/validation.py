"""Validation of the model being trained: retrieval recall@1/5 both ways on image-caption pairs
(an image found when any row of its caption is), and zero-shot accuracy on class data."""
from typing import Dict, Optional

import numpy as np
import torch

from ..evaluation.metrics import hit_rate, top_k_accuracy  # [eval]'s metrics, numpy only
from ..predictor import Predictor
from .data import Pairs, embed_distinct

RECALL_KS = (1, 5)


def validate(predictor: Predictor, pairs: Pairs, image_latents: Optional[torch.Tensor] = None) -> Dict[str, float]:
    """Metrics of predictor's model on `pairs` (all readable: failures were left out before).

    image_latents: the pairs' image latents when the image tower is locked (computed once), else
    computed here. Returns image_retrieval_recall@k and text_retrieval_recall@k (k in RECALL_KS),
    their mean at 1 as 'recall@1', and for class data zero_shot_acc1 (with 'chance', 1 / classes).
    """
    if image_latents is None:
        pictures = embed_distinct(predictor, pairs.images)
        image_latents = pictures.embedded.latents[torch.tensor(pictures.picks)]
    groups = np.asarray(pairs.groups)
    if pairs.classes is None:
        group_captions = {}
        for caption, group in zip(pairs.captions, pairs.groups):
            group_captions.setdefault(group, caption)
        texts = [group_captions[g] for g in range(len(group_captions))]
        text_latents = predictor.get_caption_latents(texts)
    else:
        text_latents = predictor.get_text_latents(pairs.classes, templates=pairs.templates)
    similarity = (text_latents.float().cpu() @ image_latents.float().cpu().t()).numpy()  # [groups, images]
    positive = np.arange(len(text_latents))[:, None] == groups[None, :]  # [groups, images]
    metrics = {}
    for k in RECALL_KS:
        metrics[f'image_retrieval_recall@{k}'] = hit_rate(similarity[positive.any(axis=1)],
                                                           positive[positive.any(axis=1)], k)
        metrics[f'text_retrieval_recall@{k}'] = hit_rate(similarity.T, positive.T, k)
    metrics['recall@1'] = (metrics['image_retrieval_recall@1'] + metrics['text_retrieval_recall@1']) / 2
    if pairs.classes is not None:
        metrics['zero_shot_acc1'] = top_k_accuracy(similarity.T, groups, 1)
        metrics['chance'] = 1 / len(pairs.classes)
    return metrics


def best_metric(metrics: Dict[str, float]) -> str:
    """The metric keep_best ranks validations by: zero-shot accuracy on class data, else mean recall@1."""
    return 'zero_shot_acc1' if 'zero_shot_acc1' in metrics else 'recall@1'
