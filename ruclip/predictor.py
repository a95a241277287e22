"""Predictor: batched text and image latents and zero-shot labels, the original's API."""
import functools
from typing import Callable, Iterable, Iterator, List, Optional

import torch
from tqdm.auto import tqdm

from .allocator import MMAP_THRESHOLD, keep_freed_memory
from .checks import count, str_list
from .model import CLIP, resolve_device
from .pipeline import default_num_workers, image_batches
from .processor import RuCLIPProcessor

DEFAULT_TEMPLATES = [
    '{}',
    'фото, на котором изображено {}',
    'изображение с {}',
    'картинка с {}',
    'фото с {}',
    'на фото видно {}',
]
# On CPU a batch is as large as it can be while its widest activation, [tokens, 4 * width], stays
# under glibc's largest mmap threshold, so that its blocks are reused from the heap (see allocator).
# 28 MiB is still thousands of rows.
CPU_ACTIVATION_BYTES = MMAP_THRESHOLD - 4 * 2 ** 20
CUDA_BATCH_SIZE = 128  # images per forward pass on CUDA
CUDA_TEXT_TOKENS = 65536  # text tokens per forward pass on CUDA


def _ordinary_result(method):
    """Run method under torch.inference_mode() and return a copy of its tensor made outside that mode:
    an ordinary tensor, which autograd (a linear probe), in-place edits and nn.Parameter accept."""
    inference = torch.inference_mode()(method)

    @functools.wraps(method)
    def ordinary(*args, **kwargs) -> torch.Tensor:
        return inference(*args, **kwargs).clone()
    return ordinary


class Predictor:
    """Zero-shot classification and latents with a RuCLIP model, as ruclip 0.0.2's Predictor.

    Results do not depend on how the work is batched, up to float rounding; speed and memory do.
    bs: images per forward pass of the image tower. None (default; the original's was 8): picked
        for the device, on CPU the most that keep the widest activation under 28 MiB (32 images
        of base-patch32-384 in bf16, 16 in fp32), on CUDA 128. Texts are batched by length
        whatever bs is.
    num_workers: threads that decode and transform images while the model runs (0: none, in the
        calling thread); None: up to 8, one per CPU core.
    jpeg_draft: decode JPEG files and bytes at half or a quarter of their size (never below the
        model's resolution). Faster on large photos, but the pixels, hence the latents, change a
        little (see benchmarks/RESULTS.md); off by default.
    compile: run the image tower through torch.compile (the first batch then takes a while to
        compile; the last batch is padded so that every batch has the same shape).
    tune_malloc: on CPU under Linux/glibc, fix malloc's mmap and trim thresholds for the process
        (ruclip.allocator) so that activation memory is reused rather than returned to the OS and
        faulted in again at every layer, which took a fifth of a zero-shot run's time here. The
        process then keeps up to 512 MiB of freed memory for reuse. False leaves malloc alone.
    """

    def __init__(self, clip_model: CLIP, clip_processor: RuCLIPProcessor, device='cpu',
                 templates: Optional[Iterable[str]] = None, bs: Optional[int] = None, quiet: bool = False, *,
                 num_workers: Optional[int] = None, jpeg_draft: bool = False, compile: bool = False,
                 tune_malloc: bool = True):
        if num_workers is not None:
            num_workers = count('num_workers', num_workers, minimum=0)
        for name, flag in (('jpeg_draft', jpeg_draft), ('compile', compile), ('tune_malloc', tune_malloc)):
            if not isinstance(flag, bool):
                raise TypeError(f'{name} must be True or False, got {flag!r}')
        self.device = device  # as given, as the original kept it
        self.clip_model = clip_model.to(resolve_device(device)).eval()
        self.clip_processor = clip_processor
        model_size, processor_size = clip_model.config.image_resolution, clip_processor.image_size
        if model_size != processor_size:
            raise ValueError(f'the processor makes {processor_size} px images but the model takes {model_size} px: '
                             f'load both from the same checkpoint')
        self.bs = bs
        self.quiet = quiet
        self.templates = check_templates(templates)
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.jpeg_draft = jpeg_draft
        self.compile = compile
        self._compiled = {}  # the compiled image tower, built at first use; shared with copies (tasks)
        if tune_malloc and self.clip_model.device.type == 'cpu':
            keep_freed_memory()

    @property
    def bs(self) -> Optional[int]:
        """Images per forward pass as asked for; None: picked for the device (see batch_size)."""
        return self._bs

    @bs.setter
    def bs(self, value: Optional[int]) -> None:
        self._bs = None if value is None else count('bs', value)

    @property
    def batch_size(self) -> int:
        """Images per forward pass of the image tower: bs, or when None the size picked for the device."""
        return self._bs or self._device_batch_size()

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.bs = value

    def _device_batch_size(self) -> int:
        if self.clip_model.device.type == 'cuda':
            return CUDA_BATCH_SIZE
        config = self.clip_model.config
        tokens = (config.image_resolution // config.vision_patch_size) ** 2 + 1
        return max(1, self._tokens_per_batch(config.vision_width) // tokens)

    def _tokens_per_batch(self, width: int) -> int:
        if self.clip_model.device.type == 'cuda':
            return CUDA_TEXT_TOKENS
        return CPU_ACTIVATION_BYTES // (4 * width * self.clip_model.dtype.itemsize)

    @_ordinary_result
    def get_text_latents(self, class_labels: Iterable[str]) -> torch.Tensor:
        """[n_classes, embed_dim] float32: per-template latents averaged over templates, L2-normalised.

        All templates x classes go through the model together, in batches of texts of similar
        length, each cut to its longest text (attention is causal: the result is the same).
        """
        labels = str_list(class_labels, 'class_labels')
        texts = [template.format(label.lower().strip()) for template in self.templates for label in labels]
        tokens = [self.clip_processor.tokenize(text) for text in texts]
        order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
        latents = torch.empty(len(texts), self.clip_model.config.embed_dim, dtype=torch.float32)
        budget = self._tokens_per_batch(self.clip_model.config.transformer_width)
        for indices in _length_batches(order, [len(t) for t in tokens], budget):
            rows = [tokens[i] for i in indices]
            input_ids = self.clip_processor.pad(rows, length=len(rows[-1]))  # sorted: the last is longest
            latents[indices] = self.clip_model.encode_text(input_ids.to(self.device)).float().cpu()
        latents = latents.view(len(self.templates), len(labels), -1).mean(0)
        return (latents / latents.norm(dim=-1, keepdim=True)).to(self.device)

    @torch.inference_mode()
    def run(self, images: Iterable, text_latents: torch.Tensor) -> List[int]:
        """The index of the best-matching class for each image."""
        if not isinstance(text_latents, torch.Tensor) or text_latents.dim() != 2:
            raise TypeError('text_latents must be the [n_classes, embed_dim] tensor from get_text_latents')
        embed_dim = self.clip_model.config.embed_dim
        if text_latents.shape[1] != embed_dim or text_latents.shape[0] == 0:
            raise ValueError(f'text_latents must be [n_classes, {embed_dim}] for this model (from its '
                             f'get_text_latents), got shape {list(text_latents.shape)}')
        text_latents = text_latents.to(self.device, torch.float32)
        labels = []
        for image_latents in self._normalized_image_latents(images):
            logits_per_text = text_latents @ image_latents.t()  # [n_classes, B]
            labels.extend(logits_per_text.argmax(0).tolist())
        return labels

    def get_image_latents(self, images: Iterable, *, on_error: Optional[Callable] = None) -> torch.Tensor:
        """[n_images, embed_dim] float32 L2-normalised image latents; images may be any iterable
        of PIL images, file paths or encoded bytes.

        on_error: None (default): an image that cannot be read raises an error naming its position.
            Otherwise on_error(index, image, error) is called for it, in input order, and it is left
            out of the result.
        """
        with torch.inference_mode():
            batches = list(self._normalized_image_latents(images, on_error))
        return torch.cat(batches)  # outside inference mode: an ordinary tensor, with no second copy

    def _normalized_image_latents(self, images: Iterable, on_error: Optional[Callable] = None
                                  ) -> Iterator[torch.Tensor]:
        total = len(images) if hasattr(images, '__len__') else None
        if total == 0:
            raise ValueError('images is empty: give at least one image')
        on_cuda = self.clip_model.device.type == 'cuda'
        with tqdm(total=total, unit='image', disable=self.quiet) as progress:
            skipped = []

            def skip(index: int, image, error: Exception) -> None:
                skipped.append(index)
                progress.update(1)
                on_error(index, image, error)

            batches = image_batches(images, self.clip_processor.image_transform, self.batch_size,
                                    num_workers=self.num_workers, pin_memory=on_cuda, draft=self.jpeg_draft,
                                    on_error=skip if on_error else None)
            seen = 0
            for pixel_values in batches:
                n = len(pixel_values)
                pixel_values = pixel_values.to(self.clip_model.device, non_blocking=on_cuda)  # pinned on CUDA
                latents = self._encode_image(pixel_values).float()
                seen += n
                progress.update(n)
                yield latents / latents.norm(dim=-1, keepdim=True)
        if seen == 0:
            raise ValueError(f'none of the {len(skipped)} images could be read' if skipped
                             else 'images is empty: give at least one image')

    def _encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if not self.compile:
            return self.clip_model.encode_image(pixel_values)
        if 'visual' not in self._compiled:
            self._compiled['visual'] = torch.compile(self.clip_model.visual, dynamic=False)
        n, batch_size = len(pixel_values), self.batch_size
        if n < batch_size:  # one shape for the compiled graph
            padding = pixel_values.new_zeros((batch_size - n, *pixel_values.shape[1:]))
            pixel_values = torch.cat([pixel_values, padding])
        return self._compiled['visual'](pixel_values.to(self.clip_model.dtype))[:n]


def _length_batches(order: List[int], lengths: List[int], budget: int) -> Iterator[List[int]]:
    """Consecutive runs of `order` (sorted by length) with count x longest length <= budget."""
    batch = []
    for index in order:
        if batch and (len(batch) + 1) * lengths[index] > budget:
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def check_templates(templates: Optional[Iterable[str]]) -> List[str]:
    """templates as a list (None or empty: DEFAULT_TEMPLATES, as the original's `templates or [...]`),
    or a ValueError naming the first that str.format cannot fill with one label."""
    if templates is None or isinstance(templates, (list, tuple)) and not templates:
        return list(DEFAULT_TEMPLATES)
    templates = str_list(templates, 'templates')
    for template in templates:
        try:
            filled = template.format('x'), template.format('y')
        except (IndexError, KeyError, ValueError) as error:
            raise ValueError(f"template {template!r} cannot take a label: it needs one '{{}}' (or '{{0}}') for it, "
                             f"and '{{{{' '}}}}' for literal braces ({type(error).__name__}: {error})") from None
        if filled[0] == filled[1]:
            raise ValueError(f'template {template!r} needs a {{}} for the label')
    return templates
