"""Predictor: batched text and image latents and zero-shot labels, the original's API."""
import os
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

import torch
from tqdm.auto import tqdm

from ._batches import default_num_workers, image_batches
from ._checks import count, str_list
from ._device import resolve_device
from ._malloc import keep_freed_memory
from .identity import ModelIdentity, model_identity, tokenizer_digest, weights_digest
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
CPU_ACTIVATION_BYTES = 28 * 2 ** 20  # on CPU, a batch's widest activation, [tokens, 4 * width], stays under this
CUDA_BATCH_SIZE = 128  # images per forward pass on CUDA
CUDA_TEXT_TOKENS = 65536  # text tokens per forward pass on CUDA


@dataclass(frozen=True)
class EmbeddedImages:
    """What Predictor.embed_images made of a list of images.

    Attributes:
        latents: `[len(kept), embed_dim]` float32, L2-normalised, on the CPU; row i for
            `images[kept[i]]`.
        kept: the positions in the input of the images that were read, ascending.
        failures: `(position, the image as given, reason)` for each image that could not be read,
            in input order; the reason names the file (or the byte count of encoded bytes).
    """
    latents: torch.Tensor
    kept: List[int]
    failures: List[Tuple[int, object, str]]


class Predictor:
    """Zero-shot classification and latents with a RuCLIP model, as ruclip 0.0.2's Predictor.

    Results do not depend on how the work is batched, up to float rounding; speed and memory do.
    Every result is an ordinary tensor (autograd, in-place edits and nn.Parameter take it),
    computed under torch.inference_mode(). A Predictor may be used from several threads at once;
    each call gives what it gives alone. Settings here are the defaults of every call; `templates`
    and the progress bar can be given per call too. `identity` (a ruclip.identity.ModelIdentity)
    says which model and preprocessing make the latents; files derived from them record it.

    Args:
        clip_model: the model, moved to `device` and put in eval mode.
        clip_processor: the processor loaded with it (the same image size).
        device (str | torch.device): where the model runs: 'cpu', 'cuda' or a torch.device.
        templates: the prompts each class label is put in by get_text_latents, each with one '{}';
            default DEFAULT_TEMPLATES, the original's Russian prompts.
        bs: images per forward pass of the image tower (`batch_size` after construction; positional
            as in the original). None (default; the original's was 8): picked for the device, on CPU
            the most that keep the widest activation under CPU_ACTIVATION_BYTES, on CUDA 128. Texts
            are batched by length whatever it is.
        quiet: no progress bars.
        num_workers: threads that decode and transform images while the model runs (0: none, in the
            calling thread); None: one per CPU core this process may use, up to 8.
        jpeg_draft: decode JPEG files and bytes at half or a quarter of their size (both sides never
            below twice the model's resolution: ruclip.image.JPEG_DRAFT_POLICY, recorded in the
            identity). Faster on large photos, but the pixels, hence the latents, change a little; off
            by default (`ruclip index` and sharded `ruclip embed` turn it on unless --exact-decode).
        compile: run the image tower through torch.compile (the first batch then takes a while to
            compile; the last batch is padded so that every batch has the same shape).
        tune_malloc: on CPU under Linux/glibc, fix malloc's mmap and trim thresholds for the whole
            process (ruclip._malloc) so that activation memory is reused rather than returned to the
            OS and faulted in again at every layer; the process then keeps up to 512 MiB of freed
            memory. Off by default: it changes the host process's allocator.

    Raises:
        ValueError: a processor made for another image size, a template that cannot take a label,
            or a negative num_workers.
        TypeError: jpeg_draft, compile or tune_malloc not a bool.
    """

    def __init__(self, clip_model: CLIP, clip_processor: RuCLIPProcessor, device='cpu',
                 templates: Optional[Iterable[str]] = None, bs: Optional[int] = None, quiet: bool = False, *,
                 num_workers: Optional[int] = None, jpeg_draft: bool = False, compile: bool = False,
                 tune_malloc: bool = False):
        if num_workers is not None:
            num_workers = count('num_workers', num_workers, minimum=0)
        for name, flag in (('jpeg_draft', jpeg_draft), ('compile', compile), ('tune_malloc', tune_malloc)):
            if not isinstance(flag, bool):
                raise TypeError(f'{name} must be True or False, got {flag!r}')
        self.device = resolve_device(device)
        self.clip_model = clip_model.to(self.device).eval()
        self.clip_processor = clip_processor
        model_size, processor_size = clip_model.config.image_resolution, clip_processor.image_size
        if model_size != processor_size:
            raise ValueError(f'the processor makes {processor_size} px images but the model takes {model_size} px: '
                             f'load both from the same checkpoint')
        self.batch_size = bs
        self.quiet = quiet
        self.templates = check_templates(templates)
        self.num_workers = default_num_workers() if num_workers is None else num_workers
        self.jpeg_draft = jpeg_draft
        self.compile = compile
        self._compiled_visual = None  # built at first use
        self._compile_lock = threading.Lock()
        digests = dict(weights=getattr(clip_model, 'weights_digest', None) or weights_digest(clip_model.state_dict()),
                       tokenizer=tokenizer_digest(clip_processor.tokenizer))  # each computed once, here
        self._identities = {draft: model_identity(self.clip_model, clip_processor, jpeg_draft=draft, **digests)
                            for draft in (False, True)}
        if tune_malloc and self.device.type == 'cpu':
            keep_freed_memory()

    @property
    def identity(self) -> ModelIdentity:
        """Which model, backend, precision and preprocessing make this predictor's latents (the
        weights as they were when the Predictor was made)."""
        return self._identities[self.jpeg_draft]

    @property
    def batch_size(self) -> int:
        """Images per forward pass of the image tower: as set, or when set to None, picked for the device."""
        return self._batch_size or self._device_batch_size()

    @batch_size.setter
    def batch_size(self, value: Optional[int]) -> None:
        self._batch_size = None if value is None else count('batch_size (bs)', value)

    bs = batch_size  # the original's name

    def _device_batch_size(self) -> int:
        if self.device.type == 'cuda':
            return CUDA_BATCH_SIZE
        config = self.clip_model.config
        tokens = (config.image_resolution // config.vision_patch_size) ** 2 + 1
        return max(1, self._tokens_per_batch(config.vision_width) // tokens)

    def _tokens_per_batch(self, width: int) -> int:
        if self.device.type == 'cuda':
            return CUDA_TEXT_TOKENS
        return CPU_ACTIVATION_BYTES // (4 * width * self.clip_model.dtype.itemsize)

    def get_text_latents(self, class_labels: Iterable[str], *,
                         templates: Optional[Iterable[str]] = None) -> torch.Tensor:
        """Class latents: each label (lowercased) in every template, the templates' latents averaged.

        As the original computes them: the raw latents of a label's prompts are averaged, then the
        average is normalised.

        Args:
            class_labels: the class names, at least one.
            templates: the prompts for this call, each with one '{}'; default `self.templates`.

        Returns:
            `[n_classes, embed_dim]` float32 tensor on `self.device`, L2-normalised.

        Raises:
            ValueError: no labels, or a template that cannot take a label.
            TypeError: labels given as one str, or holding something other than str.
        """
        labels = str_list(class_labels, 'class_labels')
        templates = self.templates if templates is None else check_templates(templates)
        texts = [template.format(label.lower().strip()) for template in templates for label in labels]
        latents = self._encode_texts(texts).view(len(templates), len(labels), -1).mean(0)
        return (latents / latents.norm(dim=-1, keepdim=True)).to(self.device)

    def get_caption_latents(self, captions: Iterable[str]) -> torch.Tensor:
        """Latents of texts as they are, without templates.

        Args:
            captions: the texts, at least one.

        Returns:
            `[n_captions, embed_dim]` float32 tensor on `self.device`, L2-normalised.

        Raises:
            ValueError: no captions.
            TypeError: captions given as one str, or holding something other than str.
        """
        latents = self._encode_texts(str_list(captions, 'captions'))
        return (latents / latents.norm(dim=-1, keepdim=True)).to(self.device)

    def _encode_texts(self, texts: List[str]) -> torch.Tensor:
        """[len(texts), embed_dim] float32 raw text latents on the CPU. All texts go through the model
        together, in batches of texts of similar length, each cut to its longest text (attention is
        causal and the latent is read at eos: the result is the same)."""
        tokens = [self.clip_processor.tokenize(text) for text in texts]
        order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
        budget = self._tokens_per_batch(self.clip_model.config.transformer_width)
        batches = []
        with torch.inference_mode():
            for indices in _length_batches(order, [len(t) for t in tokens], budget):
                rows = [tokens[i] for i in indices]
                input_ids = self.clip_processor.pad(rows, length=len(rows[-1]))  # sorted: the last is longest
                batches.append(self.clip_model.encode_text(input_ids.to(self.device)).float().cpu())
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return torch.cat(batches)[inverse]  # outside inference mode: an ordinary tensor, in input order

    def run(self, images: Iterable, text_latents: torch.Tensor) -> List[int]:
        """The index of the best-matching class for each image.

        Args:
            images: PIL images, file paths or encoded bytes (any iterable, generators included).
            text_latents: `[n_classes, embed_dim]` class latents from get_text_latents.

        Returns:
            One class index per image, in input order (`[]` for no images, as the original).

        Raises:
            TypeError: text_latents is not a 2-D tensor.
            ValueError: text_latents of another embedding size or with no rows, or an image that cannot
                be read (FileNotFoundError for a missing file).
        """
        if not isinstance(text_latents, torch.Tensor) or text_latents.dim() != 2:
            raise TypeError('text_latents must be the [n_classes, embed_dim] tensor from get_text_latents')
        embed_dim = self.clip_model.config.embed_dim
        if text_latents.shape[1] != embed_dim or text_latents.shape[0] == 0:
            raise ValueError(f'text_latents must be [n_classes, {embed_dim}] for this model (from its '
                             f'get_text_latents), got shape {list(text_latents.shape)}')
        text_latents = text_latents.detach().to(self.device, torch.float32)
        labels = []
        with torch.inference_mode():
            for image_latents in self._normalized_image_latents(images, allow_empty=True):
                logits_per_text = text_latents @ image_latents.t()  # [n_classes, B]
                labels.extend(logits_per_text.argmax(0).tolist())
        return labels

    def get_image_latents(self, images: Iterable, *, on_error: Optional[Callable] = None,
                          progress: Optional[bool] = None) -> torch.Tensor:
        """Image latents, in input order.

        Args:
            images: PIL images, file paths or encoded bytes (any iterable, generators included).
            on_error: None (default): an image that cannot be read raises an error naming its position.
                Otherwise `on_error(index, image, error)` is called for it, in input order, and it is
                left out of the result (embed_images returns the same as data).
            progress: show a progress bar (default: unless `self.quiet`).

        Returns:
            `[n_images, embed_dim]` float32 tensor on `self.device`, L2-normalised (`[0, embed_dim]` for
            no images).

        Raises:
            ValueError: an image that cannot be read, without on_error (FileNotFoundError for a missing
                file).
        """
        with torch.inference_mode():
            batches = list(self._normalized_image_latents(images, on_error, allow_empty=True, progress=progress))
        if not batches:
            return torch.empty(0, self.clip_model.config.embed_dim, device=self.device)
        return torch.cat(batches)  # outside inference mode: an ordinary tensor, with no second copy

    def embed_images(self, images: Iterable, *, progress: Optional[bool] = None) -> EmbeddedImages:
        """Latents of the images that can be read, and the reasons of those that cannot.

        The one way ruclip embeds images for an index, shards, an evaluation or a training set. Never
        raises for an unreadable image; an empty input gives no rows.

        Args:
            images: PIL images, file paths or encoded bytes (any iterable).
            progress: show a progress bar (default: unless `self.quiet`).

        Returns:
            EmbeddedImages: the latents (float32, on the CPU), the positions kept, and the failures.
        """
        failures = []

        def record(index: int, image, error: Exception) -> None:
            reason, name = str(error), os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
            failures.append((index, image, reason if name is None or name in reason else f'{name}: {reason}'))

        latents = self.get_image_latents(images, progress=progress, on_error=record)
        failed = {index for index, _, _ in failures}
        total = len(failed) + len(latents)
        kept = [index for index in range(total) if index not in failed]
        return EmbeddedImages(latents=latents.float().cpu(), kept=kept, failures=failures)

    def _normalized_image_latents(self, images: Iterable, on_error: Optional[Callable] = None,
                                  allow_empty: bool = False, progress: Optional[bool] = None) -> Iterator[torch.Tensor]:
        total = len(images) if hasattr(images, '__len__') else None
        on_cuda = self.device.type == 'cuda'
        show = not self.quiet if progress is None else bool(progress)
        with tqdm(total=total, unit='image', disable=not show) as progress:
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
                pixel_values = pixel_values.to(self.device, non_blocking=on_cuda)  # pinned on CUDA
                latents = self._encode_image(pixel_values).float()
                seen += n
                progress.update(n)
                yield latents / latents.norm(dim=-1, keepdim=True)
        if seen == 0 and not skipped and not allow_empty:
            raise ValueError('images is empty: give at least one image')

    def _encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if not self.compile:
            return self.clip_model.encode_image(pixel_values)
        with self._compile_lock:
            if self._compiled_visual is None:
                self._compiled_visual = torch.compile(self.clip_model.visual, dynamic=False)
        n, batch_size = len(pixel_values), self.batch_size
        if n < batch_size:  # one shape for the compiled graph
            padding = pixel_values.new_zeros((batch_size - n, *pixel_values.shape[1:]))
            pixel_values = torch.cat([pixel_values, padding])
        return self._compiled_visual(pixel_values.to(self.clip_model.dtype))[:n]


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
