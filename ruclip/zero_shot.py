"""Zero-shot classification on top of a Predictor: the top-k labels of each image, with probabilities.

`images` may be a list (or any iterable) of PIL images, file paths or bytes, or the
[n_images, embed_dim] latents Predictor.get_image_latents returned for them.
"""
from typing import Optional, Sequence

import torch

from ._checks import str_list
from .predictor import Predictor
from .retrieval import Images, image_latents
from .scores import TopK, probabilities, top_k


def classify(predictor: Predictor, images: Images, labels: Sequence[str], k: int = 3,
             text_latents: Optional[torch.Tensor] = None) -> TopK:
    """The k most probable labels for each image, with their probabilities, best first.

    Probabilities are the softmax over `labels` of logit_scale * cosine similarity, as the model
    was trained; labels are wrapped in predictor.templates. The top label is Predictor.run's.

    Args:
        predictor: the model to run.
        images: PIL images, file paths or encoded bytes (any iterable), or the `[n_images,
            embed_dim]` latents `predictor.get_image_latents` returned.
        labels: the class names, at least one.
        k: labels kept per image; more than `len(labels)` keeps them all.
        text_latents: `predictor.get_text_latents(labels)`, when already computed.

    Returns:
        A TopK, whose `indices` and `scores` (probabilities) are `[n_images, k]`, and `labels` the
        names.

    Raises:
        ValueError: empty labels, text_latents with another row count than labels, or an image
            that cannot be read (FileNotFoundError for a missing file).
        TypeError: labels given as one str, or images as a tensor that is not `[n, embed_dim]`.
    """
    labels = str_list(labels, 'labels')
    if text_latents is None:
        text_latents = predictor.get_text_latents(labels)
    elif text_latents.shape[0] != len(labels):
        raise ValueError(f'text_latents has {text_latents.shape[0]} rows for {len(labels)} labels')
    scale = predictor.clip_model.logit_scale.detach().exp()
    return top_k(probabilities(image_latents(predictor, images), text_latents, scale), k, labels)
