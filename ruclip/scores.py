"""Scores from latents: cosine similarity, class probabilities, top-k and two-way ranking.

Nothing here runs the model: the inputs are latents from Predictor.get_image_latents and
Predictor.get_text_latents (or CLIP.encode_*), so they can be computed once and reused.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from ._checks import count

CHUNK_ELEMENTS = 1 << 24  # rank_latents() holds at most about this many similarities at once (64 MiB in fp32)


@dataclass(frozen=True)
class TopK:
    """The k best columns of each row of a score matrix, best first.

    Attributes:
        indices: `[rows, k]` long tensor, the column indices.
        scores: `[rows, k]` float tensor, their scores.
        labels: the columns' names per row (`labels[row][j]` names `indices[row, j]`), or None.
    """
    indices: torch.Tensor
    scores: torch.Tensor
    labels: Optional[List[List[str]]] = None

    def __len__(self) -> int:
        return self.indices.shape[0]

    def tolist(self) -> List[List[dict]]:
        """Per row, [{'index': int, 'score': float, 'label': str (when labelled)}, ...], best first."""
        rows = []
        for row, (indices, scores) in enumerate(zip(self.indices.tolist(), self.scores.tolist())):
            entries = [dict(index=index, score=score) for index, score in zip(indices, scores)]
            if self.labels is not None:
                for entry, label in zip(entries, self.labels[row]):
                    entry['label'] = label
            rows.append(entries)
        return rows


@dataclass(frozen=True)
class Ranking:
    """Both directions of an images x texts ranking, scored by cosine similarity.

    Attributes:
        texts_per_image: row i holds the best texts for image i.
        images_per_text: row j holds the best images for text j.
    """
    texts_per_image: TopK
    images_per_text: TopK


def similarity(image_latents: torch.Tensor, text_latents: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every image latent with every text latent.

    Args:
        image_latents: `[n_images, embed_dim]` float tensor (normalised here, so any scale works).
        text_latents: `[n_texts, embed_dim]` float tensor from the same model.

    Returns:
        `[n_images, n_texts]` float32 tensor on the image latents' device.

    Raises:
        TypeError: a latents argument that is not a 2-D float tensor.
        ValueError: no rows, or embedding sizes that differ.
    """
    image_latents, text_latents = _check_latents(image_latents, text_latents)
    return image_latents @ text_latents.t()


def probabilities(image_latents: torch.Tensor, text_latents: torch.Tensor,
                  scale: Union[float, torch.Tensor]) -> torch.Tensor:
    """Softmax over the classes of `scale * cosine similarity`, as the model was trained.

    Args:
        image_latents: `[n_images, embed_dim]` float tensor.
        text_latents: `[n_classes, embed_dim]` float tensor, one row per class.
        scale: the model's trained temperature, `clip.logit_scale.exp()` (the model stores its log).

    Returns:
        `[n_images, n_classes]` float32 tensor whose rows sum to 1.

    Raises:
        ValueError: a scale that is not finite and positive, no rows, or embedding sizes that differ.
        TypeError: a latents argument that is not a 2-D float tensor.
    """
    if isinstance(scale, torch.Tensor) and scale.numel() != 1:
        raise ValueError(f'scale must be one number, e.g. clip.logit_scale.exp(); got {_describe(scale)}')
    try:
        scale = float(scale.detach() if isinstance(scale, torch.Tensor) else scale)
    except (TypeError, ValueError):
        raise ValueError(f'scale must be one number, e.g. clip.logit_scale.exp(); got {scale!r}') from None
    if not 0 < scale < math.inf:
        raise ValueError(f'scale must be a finite positive number, e.g. clip.logit_scale.exp(); got {scale}')
    return torch.softmax(scale * similarity(image_latents, text_latents), dim=-1)


def top_k(scores: torch.Tensor, k: int, labels: Optional[Sequence[str]] = None) -> TopK:
    """The k highest scores of each row, best first.

    Args:
        scores: `[rows, columns]` tensor.
        k: scores kept per row; more than the columns keeps them all.
        labels: one name per column, copied into the result for each row's picks.

    Returns:
        A TopK with `[rows, min(k, columns)]` indices and scores, on the CPU.

    Raises:
        TypeError: scores is not a 2-D tensor, or labels is one str.
        ValueError: k is not a positive integer, or labels' length is not the column count.
    """
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
        raise TypeError(f'scores must be a [rows, columns] tensor, got {_describe(scores)}')
    k = count('k', k)
    if isinstance(labels, (str, bytes)):
        raise TypeError(f'labels must be a list of names, one per column, got a {type(labels).__name__}: {labels!r}')
    if labels is not None and len(labels) != scores.shape[1]:
        raise ValueError(f'got {len(labels)} labels for {scores.shape[1]} score columns')
    values, indices = scores.topk(min(k, scores.shape[1]), dim=1)
    return _labelled(values.cpu(), indices.cpu(), labels)


def rank_latents(image_latents: torch.Tensor, text_latents: torch.Tensor, k: int = 5,
                 texts: Optional[Sequence[str]] = None, images: Optional[Sequence[str]] = None) -> Ranking:
    """The k most similar texts for each image and the k most similar images for each text.

    The full `[n_images, n_texts]` matrix is never held: rows are scored a chunk at a time,
    keeping only each row's top k.

    Args:
        image_latents: `[n_images, embed_dim]` float tensor.
        text_latents: `[n_texts, embed_dim]` float tensor from the same model.
        k: results kept in each direction; cut to the number of candidates.
        texts: names of the texts, for the labels of `texts_per_image`.
        images: names of the images, for the labels of `images_per_text`.

    Returns:
        A Ranking of cosine similarities in both directions.

    Raises:
        TypeError: a latents argument that is not a 2-D float tensor.
        ValueError: no rows, embedding sizes that differ, k not a positive integer, or a count of
            names that differs from its latents' rows.
    """
    image_latents, text_latents = _check_latents(image_latents, text_latents)
    k = count('k', k)
    for names, latents, what in ((texts, text_latents, 'texts'), (images, image_latents, 'images')):
        if names is not None and len(names) != latents.shape[0]:
            raise ValueError(f'got {len(names)} {what} names for {latents.shape[0]} {what} latents')
    return Ranking(texts_per_image=_chunked_top_k(image_latents, text_latents, k, texts),
                   images_per_text=_chunked_top_k(text_latents, image_latents, k, images))


def _chunked_top_k(queries: torch.Tensor, keys: torch.Tensor, k: int, labels) -> TopK:
    k = min(k, keys.shape[0])
    chunk = max(1, CHUNK_ELEMENTS // keys.shape[0])
    values, indices = zip(*(
        (queries[start:start + chunk] @ keys.t()).topk(k, dim=1)  # [chunk, n_keys] -> 2 x [chunk, k]
        for start in range(0, queries.shape[0], chunk)
    ))
    return _labelled(torch.cat(values).cpu(), torch.cat(indices).cpu(), labels)


def _labelled(values: torch.Tensor, indices: torch.Tensor, labels) -> TopK:
    names = None if labels is None else [[labels[i] for i in row] for row in indices.tolist()]
    return TopK(indices=indices, scores=values, labels=names)


def _check_latents(image_latents, text_latents):
    for name, latents in (('image_latents', image_latents), ('text_latents', text_latents)):
        if not isinstance(latents, torch.Tensor) or latents.dim() != 2 or not latents.is_floating_point():
            raise TypeError(f'{name} must be a float [n, embed_dim] tensor, got {_describe(latents)}')
        if latents.shape[0] == 0:
            raise ValueError(f'{name} is empty: give at least one')
    if image_latents.shape[1] != text_latents.shape[1]:
        raise ValueError(f'image_latents have {image_latents.shape[1]} dimensions and text_latents '
                         f'{text_latents.shape[1]}: they must come from the same model')
    device = image_latents.device
    return (F.normalize(image_latents.float(), dim=-1),
            F.normalize(text_latents.to(device).float(), dim=-1))


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f'a {value.dtype} tensor of shape {list(value.shape)}'
    return type(value).__name__
