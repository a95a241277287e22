"""The models an evaluation can run: RuCLIP, and peers in the same harness with their own tokenizer
and preprocessing, so that a user can put RuCLIP beside SigLIP 2 or XLM-R CLIP in one run.

What the harness needs of a model (the DualEncoder interface; ruclip.Predictor has it):
    identity                      a ruclip.identity.ModelIdentity: keys the feature cache, goes into results
    get_caption_latents(texts)    [n, dim] float32 L2-normalised, each text as it is
    get_text_latents(labels, templates=...)   class latents, the templates' raw latents averaged
    get_image_latents(images, progress=None)  [n, dim] float32 L2-normalised; an unreadable image raises

load_model(spec) tells the kinds apart:
    'open_clip:ARCH' or 'open_clip:ARCH@PRETRAINED'   an open_clip model (ARCH a name of
        open_clip.list_models(), an hf-hub:ORG/NAME, or a model-config JSON file, registered under its
        file name; PRETRAINED an open_clip tag or a checkpoint file)
    a folder: its config.json has "model_type" (transformers save_pretrained: CLIPModel, SiglipModel,
        AltCLIPModel, ...) or not (a RuCLIP checkpoint)
    a model of `ruclip models`, else a Hub name of a transformers dual encoder.
"""
import hashlib
import json
import os
from typing import Iterable, Optional, Protocol, runtime_checkable

import torch

from .._batches import image_batches
from .._checks import str_list
from ..identity import ModelIdentity, dual_encoder_identity
from ..predictor import check_templates

OPEN_CLIP_PREFIX = 'open_clip:'
TEXT_BATCH = 256  # texts per forward pass
IMAGE_BATCH = {'cpu': 32, 'cuda': 256}
NAFLEX_TYPES = ('siglip2',)  # variable-resolution patches, not one [3, S, S] image: not supported here


@runtime_checkable
class DualEncoder(Protocol):
    """What the evaluation calls on a model (ruclip.Predictor and PeerEncoder have it)."""
    identity: ModelIdentity

    def get_caption_latents(self, captions: Iterable[str]) -> torch.Tensor: ...

    def get_text_latents(self, class_labels: Iterable[str], *,
                         templates: Optional[Iterable[str]] = None) -> torch.Tensor: ...

    def get_image_latents(self, images: Iterable, *, progress: Optional[bool] = None) -> torch.Tensor: ...


def model_kind(spec: str) -> str:
    """'ruclip', 'transformers' or 'open_clip': how load_model reads `spec`."""
    if spec.startswith(OPEN_CLIP_PREFIX):
        return 'open_clip'
    if os.path.isdir(spec):
        config = os.path.join(spec, 'config.json')
        if not os.path.isfile(config):
            raise FileNotFoundError(f'{spec} has no config.json: expected a RuCLIP checkpoint or a transformers '
                                    f'model saved with save_pretrained')
        with open(config, encoding='utf-8') as file:
            return 'transformers' if 'model_type' in json.load(file) else 'ruclip'
    from ..pretrained import MODELS
    if spec in MODELS or os.path.exists(spec):
        return 'ruclip'
    if '/' in spec:
        return 'transformers'  # a Hub name such as google/siglip2-base-patch16-224
    raise ValueError(f'unknown model {spec!r}: give a model of `ruclip models` ({sorted(MODELS)}), a folder, a '
                     f'Hub name of a transformers dual encoder (org/name), or open_clip:ARCH[@PRETRAINED]')


def load_peer(spec: str, device='cpu', *, cache_dir: Optional[str] = None, batch_size: Optional[int] = None,
              quiet: bool = False) -> 'PeerEncoder':
    """The transformers or open_clip model `spec` names (see model_kind), in float32 on device."""
    kind = model_kind(spec)
    if kind == 'open_clip':
        return OpenCLIPEncoder.load(spec[len(OPEN_CLIP_PREFIX):], device, cache_dir, batch_size, quiet)
    if kind == 'transformers':
        return TransformersEncoder.load(spec, device, cache_dir, batch_size, quiet)
    raise ValueError(f'{spec} is a RuCLIP model: load it with ruclip.load and ruclip.Predictor')


class PixelTransform:
    """A PIL image -> [3, size, size] pixel_values callable in the shape ruclip's image batches take."""

    def __init__(self, function, size: int):
        self.function, self.size = function, int(size)

    def __call__(self, image, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        pixels = self.function(image.convert('RGB'))
        if out is None:
            return pixels
        if pixels.shape != out.shape:
            raise ValueError(f'the image transform made {list(pixels.shape)} pixel values, expected {list(out.shape)}')
        return out.copy_(pixels)


class PeerEncoder:
    """A dual encoder that is not RuCLIP, with the harness's interface (the module docstring).

    Subclasses give _encode_texts(texts) and _encode_pixels(pixel_values), each the raw latents.
    """
    family = 'peer'

    def __init__(self, module: torch.nn.Module, transform: PixelTransform, *, name: str, config: dict,
                 tokenizer_digest: str, mean, std, device='cpu', batch_size: Optional[int] = None,
                 quiet: bool = False):
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.transform = transform
        self.batch_size = batch_size or IMAGE_BATCH.get(self.device.type, 32)
        self.quiet = quiet
        with torch.inference_mode():
            probe = self._encode_texts(['probe'])
        self.identity = dual_encoder_identity(name=name, family=self.family, config=config,
                                              state_dict=self.module.state_dict(), tokenizer=tokenizer_digest,
                                              dtype='float32', image_size=transform.size, mean=mean, std=std,
                                              embed_dim=probe.shape[-1])
        self.runtime = dict(backend='torch', dtype='float32', family=self.family)

    def get_caption_latents(self, captions: Iterable[str]) -> torch.Tensor:
        """[n, embed_dim] float32 L2-normalised on the CPU: each text as it is, no template."""
        texts = str_list(captions, 'captions')
        latents = self._raw_texts(texts)
        return latents / latents.norm(dim=-1, keepdim=True)

    def get_text_latents(self, class_labels: Iterable[str], *,
                         templates: Optional[Iterable[str]] = None) -> torch.Tensor:
        """[n_classes, embed_dim]: each label in every template, the raw latents averaged, normalised
        (as ruclip.Predictor, without lowercasing: peers' tokenizers keep case)."""
        labels = str_list(class_labels, 'class_labels')
        templates = check_templates(templates)
        texts = [template.format(label) for template in templates for label in labels]
        latents = self._raw_texts(texts).view(len(templates), len(labels), -1).mean(0)
        return latents / latents.norm(dim=-1, keepdim=True)

    def get_image_latents(self, images: Iterable, *, progress: Optional[bool] = None) -> torch.Tensor:
        """[n, embed_dim] float32 L2-normalised on the CPU; an image that cannot be read raises an error
        naming its position."""
        from tqdm.auto import tqdm

        total = len(images) if hasattr(images, '__len__') else None
        rows = []
        show = not self.quiet if progress is None else bool(progress)
        with torch.inference_mode(), tqdm(total=total, unit='image', disable=not show) as bar:
            for pixel_values in image_batches(images, self.transform, self.batch_size):
                latents = self._encode_pixels(pixel_values.to(self.device)).float().cpu()
                rows.append(latents / latents.norm(dim=-1, keepdim=True))
                bar.update(len(pixel_values))
        if not rows:
            return torch.empty(0, self.identity.embed_dim)
        return torch.cat(rows).clone()  # outside inference mode: an ordinary tensor

    def _raw_texts(self, texts) -> torch.Tensor:
        with torch.inference_mode():
            latents = torch.cat([self._encode_texts(texts[start:start + TEXT_BATCH]).float().cpu()
                                 for start in range(0, len(texts), TEXT_BATCH)])
        return latents.clone()

    def _encode_texts(self, texts) -> torch.Tensor:
        raise NotImplementedError

    def _encode_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class TransformersEncoder(PeerEncoder):
    """A transformers dual encoder (CLIPModel, SiglipModel, AltCLIPModel, ...) and its processor."""
    family = 'transformers'

    @classmethod
    def load(cls, spec: str, device, cache_dir, batch_size, quiet):
        from .._optional import require
        transformers = require('transformers', 'eval-peers', 'transformers models in the evaluation')
        model_type = transformers.AutoConfig.from_pretrained(spec, cache_dir=cache_dir).model_type
        if model_type in NAFLEX_TYPES:
            raise ValueError(f'{spec} is a {model_type} (NaFlex) model, whose images are variable-size patch sets: take '
                             f'a fixed-resolution checkpoint (google/siglip2-base-patch16-224 is a SiglipModel) or '
                             f'open_clip:ViT-B-16-SigLIP2@webli')
        model = transformers.AutoModel.from_pretrained(spec, cache_dir=cache_dir, dtype=torch.float32)
        processor = transformers.AutoProcessor.from_pretrained(spec, cache_dir=cache_dir)
        if not (hasattr(model, 'get_text_features') and hasattr(model, 'get_image_features')):
            raise ValueError(f'{spec} is a {type(model).__name__}, not a dual encoder (no get_text_features and '
                             f'get_image_features)')
        return cls(model, processor, spec, device, batch_size, quiet)

    def __init__(self, model, processor, name: str, device='cpu', batch_size=None, quiet=False):
        self.tokenizer, self.image_processor = processor.tokenizer, processor.image_processor
        config = model.config.to_dict()
        siglip = config.get('model_type', '').startswith('siglip')
        text_config = config.get('text_config') or {}
        self.padding = 'max_length' if siglip else True  # SigLIP was trained on max-length padding
        self.max_length = text_config.get('max_position_embeddings') or getattr(self.tokenizer, 'model_max_length', 77)
        size = (config.get('vision_config') or {}).get('image_size')
        transform = PixelTransform(
            lambda image: self.image_processor(images=image, return_tensors='pt')['pixel_values'][0], size)
        vocabulary = sorted(self.tokenizer.get_vocab().items())
        tokenizer_digest = _digest([type(self.tokenizer).__name__, vocabulary, self.padding, self.max_length])
        super().__init__(model, transform, name=name, config=config, tokenizer_digest=tokenizer_digest,
                         mean=self.image_processor.image_mean, std=self.image_processor.image_std, device=device,
                         batch_size=batch_size, quiet=quiet)

    def _encode_texts(self, texts) -> torch.Tensor:
        inputs = self.tokenizer(list(texts), padding=self.padding, truncation=True, max_length=self.max_length,
                                return_tensors='pt')
        return _features(self.module.get_text_features(**{k: v.to(self.device) for k, v in inputs.items()}))

    def _encode_pixels(self, pixel_values):
        return _features(self.module.get_image_features(pixel_values=pixel_values))


class OpenCLIPEncoder(PeerEncoder):
    """An open_clip model, its tokenizer and its preprocessing."""
    family = 'open_clip'

    @classmethod
    def load(cls, spec: str, device, cache_dir, batch_size, quiet):
        from .._optional import require
        open_clip = require('open_clip', 'eval-peers', 'open_clip models in the evaluation')
        arch, _, pretrained = spec.partition('@')
        if arch.endswith('.json'):
            if not os.path.isfile(arch):
                raise FileNotFoundError(f'open_clip model config not found: {arch}')
            open_clip.add_model_config(arch)
            arch = os.path.basename(arch)[:-len('.json')]
        if not arch.startswith('hf-hub:') and arch not in open_clip.list_models():
            raise ValueError(f'open_clip has no model {arch!r}; see open_clip.list_models()')
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained or None,
                                                                     cache_dir=cache_dir)
        tokenizer = open_clip.get_tokenizer(arch)
        return cls(model, preprocess, tokenizer, f'{OPEN_CLIP_PREFIX}{spec}', device, batch_size, quiet,
                   config=dict(arch=arch, pretrained=pretrained, model_config=open_clip.get_model_config(arch)))

    def __init__(self, model, preprocess, tokenizer, name: str, device='cpu', batch_size=None, quiet=False,
                 config: Optional[dict] = None):
        self.tokenizer = tokenizer
        size = model.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        normalize = next((t for t in getattr(preprocess, 'transforms', []) if hasattr(t, 'mean') and hasattr(t, 'std')),
                         None)
        mean, std = (normalize.mean, normalize.std) if normalize is not None else ((), ())
        super().__init__(model, PixelTransform(preprocess, size), name=name, config=config or {},
                         tokenizer_digest=_open_clip_tokenizer_digest(tokenizer), mean=mean, std=std, device=device,
                         batch_size=batch_size, quiet=quiet)

    def _encode_texts(self, texts) -> torch.Tensor:
        return self.module.encode_text(self.tokenizer(list(texts)).to(self.device))

    def _encode_pixels(self, pixel_values):
        return self.module.encode_image(pixel_values)


def _features(output) -> torch.Tensor:
    """transformers 4 returns the projected latents; 5 a model output holding them as pooler_output."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _open_clip_tokenizer_digest(tokenizer) -> str:
    inner = getattr(tokenizer, 'tokenizer', None)
    if inner is not None and hasattr(inner, 'get_vocab'):
        vocabulary = sorted(inner.get_vocab().items())
    else:
        vocabulary = sorted(getattr(tokenizer, 'encoder', {}).items())
    return _digest([type(tokenizer).__name__, vocabulary, getattr(tokenizer, 'context_length', None)])


def _digest(value) -> str:
    return hashlib.blake2b(json.dumps(value, ensure_ascii=False, default=str).encode(), digest_size=16).hexdigest()
