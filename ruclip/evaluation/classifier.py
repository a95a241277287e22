"""Zero-shot classifier weights: one text latent per class, from its name in every template.

Two orders of the same ingredients, which give slightly different weights:
- 'clip' (default): as CLIP's notebook, open_clip and CLIP_benchmark build them: each template's
  text latent L2-normalised, the class's latents averaged, the mean renormalised;
- 'predictor': as ruclip.Predictor.get_text_latents (and ruclip 0.0.2) does: the raw latents
  averaged, then normalised.
Either way the tokenizer lowercases every text, as RuCLIP was trained.
"""
from typing import Sequence

import torch

from .._checks import str_list
from ..predictor import Predictor, check_templates

ORDERS = ('clip', 'predictor')


def zero_shot_weights(predictor: Predictor, classnames: Sequence[str], templates: Sequence[str],
                      order: str = 'clip') -> torch.Tensor:
    """[n_classes, embed_dim] float32 L2-normalised class latents, on the CPU.

    Every text goes through the model once, all classes together (the Predictor batches them by length).
    """
    classnames = str_list(classnames, 'classnames')
    templates = check_templates(str_list(templates, 'templates'))
    if order == 'predictor':
        return predictor.get_text_latents(classnames, templates=templates).float().cpu()
    if order != 'clip':
        raise ValueError(f"order must be one of {list(ORDERS)}, got {order!r}")
    texts = [template.format(name) for name in classnames for template in templates]
    latents = predictor.get_caption_latents(texts).float().cpu()  # each normalised
    mean = latents.view(len(classnames), len(templates), -1).mean(1)  # [n_classes, embed_dim]
    return mean / mean.norm(dim=-1, keepdim=True)
