"""Predictor: batched text and image latents and zero-shot labels, the original's API."""
from itertools import islice
from typing import Iterable, Iterator, List, Optional, Sequence

import torch
from tqdm.auto import tqdm

from .model import CLIP
from .processor import RuCLIPProcessor

DEFAULT_TEMPLATES = [
    '{}',
    'фото, на котором изображено {}',
    'изображение с {}',
    'картинка с {}',
    'фото с {}',
    'на фото видно {}',
]
TEXT_BATCH_SIZE = 256  # texts are short and trimmed to their longest, so big batches are cheap


def batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class Predictor:
    def __init__(self, clip_model: CLIP, clip_processor: RuCLIPProcessor, device='cpu',
                 templates: Optional[Sequence[str]] = None, bs: int = 8, quiet: bool = False):
        if isinstance(bs, bool) or not isinstance(bs, int) or bs < 1:
            raise ValueError(f'bs must be a positive integer, got {bs!r}')
        self.device = device
        self.clip_model = clip_model.to(device).eval()
        self.clip_processor = clip_processor
        self.bs = bs
        self.quiet = quiet
        self.templates = list(templates or DEFAULT_TEMPLATES)
        for template in self.templates:
            if not isinstance(template, str) or '{}' not in template:
                raise ValueError(f"every template must be a str with a '{{}}' for the label, got {template!r}")

    @torch.inference_mode()
    def get_text_latents(self, class_labels: Sequence[str]) -> torch.Tensor:
        """[n_classes, embed_dim]: per-template latents averaged over templates, then L2-normalised."""
        labels = _check_labels(class_labels)
        texts = [template.format(label.lower().strip()) for template in self.templates for label in labels]
        latents = torch.cat([
            self.clip_model.encode_text(self.clip_processor(text=chunk)['input_ids'].to(self.device))
            for chunk in batched(texts, TEXT_BATCH_SIZE)
        ])  # [n_templates * n_classes, embed_dim]
        latents = latents.view(len(self.templates), len(labels), -1).mean(0)
        return latents / latents.norm(dim=-1, keepdim=True)

    @torch.inference_mode()
    def run(self, images: Iterable, text_latents: torch.Tensor) -> List[int]:
        """The index of the best-matching class for each image."""
        if not isinstance(text_latents, torch.Tensor) or text_latents.dim() != 2:
            raise TypeError('text_latents must be the [n_classes, embed_dim] tensor from get_text_latents')
        text_latents = text_latents.to(self.device)
        labels = []
        for image_latents in self._normalized_image_latents(images):
            logits_per_text = text_latents.to(image_latents.dtype) @ image_latents.t()  # [n_classes, B]
            labels.extend(logits_per_text.argmax(0).tolist())
        return labels

    @torch.inference_mode()
    def get_image_latents(self, images: Iterable) -> torch.Tensor:
        """[n_images, embed_dim] L2-normalised image latents; images may be any iterable."""
        return torch.cat(list(self._normalized_image_latents(images)))

    def _normalized_image_latents(self, images: Iterable) -> Iterator[torch.Tensor]:
        total = len(images) if hasattr(images, '__len__') else None
        if total == 0:
            raise ValueError('images is empty: give at least one image')
        seen = 0
        with tqdm(total=total, disable=self.quiet) as progress:
            for batch in batched(images, self.bs):
                pixel_values = self.clip_processor(images=batch)['pixel_values'].to(self.device)
                latents = self.clip_model.encode_image(pixel_values)
                seen += len(batch)
                progress.update(len(batch))
                yield latents / latents.norm(dim=-1, keepdim=True)
        if seen == 0:
            raise ValueError('images is empty: give at least one image')


def _check_labels(class_labels) -> List[str]:
    if isinstance(class_labels, str) or not isinstance(class_labels, Sequence):
        raise TypeError(f'class_labels must be a list of str, got {type(class_labels).__name__}')
    if not class_labels:
        raise ValueError('class_labels is empty: give at least one label')
    for label in class_labels:
        if not isinstance(label, str):
            raise TypeError(f'every class label must be a str, got {type(label).__name__}: {label!r}')
    return list(class_labels)
