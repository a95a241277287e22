"""CLIPConfig: the fields of a checkpoint's config.json, read once and checked."""
import json
import os
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Optional, Tuple

from ._checks import count, three_numbers

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
# Upper bounds on config.json's sizes, far above any CLIP (RuCLIP's largest: 24 layers of width 1024,
# 336 px, 77 positions, a vocabulary of 49408), checked before anything is allocated: a typo's
# 100000 layers or a width of 2**40 is named at once instead of hanging or overflowing inside torch.
LIMITS = dict(embed_dim=16384, image_resolution=4096, vision_layers=256, vision_width=16384,
              vision_patch_size=4096, context_length=8192, vocab_size=1 << 21, transformer_width=16384,
              transformer_heads=16384, transformer_layers=256)
MAX_IMAGE_TOKENS = 1 << 16  # (image_resolution // vision_patch_size) ** 2 patches


@dataclass(frozen=True)
class CLIPConfig:
    embed_dim: int  # size of the shared image/text latent space
    image_resolution: int  # side S of the square input image
    vision_layers: int
    vision_width: int  # ViT hidden size; heads = width // 64, as in openai-CLIP
    vision_patch_size: int
    context_length: int  # text positions, 77 for every RuCLIP
    vocab_size: int
    transformer_width: int  # text transformer hidden size
    transformer_heads: int
    transformer_layers: int
    mean: Optional[Tuple[float, float, float]] = None  # image normalisation; OpenAI's when absent
    std: Optional[Tuple[float, float, float]] = None

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in ('mean', 'std'):
                if value is not None:
                    numbers = three_numbers(f'config {field.name}', value, positive=field.name == 'std')
                    object.__setattr__(self, field.name, numbers)
            else:
                number = count(f'config {field.name}', value, maximum=LIMITS[field.name])
                object.__setattr__(self, field.name, number)
        if self.vision_patch_size > self.image_resolution:
            raise ValueError(f'config vision_patch_size ({self.vision_patch_size}) must be at most '
                             f'image_resolution ({self.image_resolution})')
        if self.image_resolution % self.vision_patch_size:
            raise ValueError(f'config image_resolution ({self.image_resolution}) must be a multiple of '
                             f'vision_patch_size ({self.vision_patch_size})')
        patches = (self.image_resolution // self.vision_patch_size) ** 2
        if patches > MAX_IMAGE_TOKENS:
            raise ValueError(f'config image_resolution ({self.image_resolution}) over vision_patch_size '
                             f'({self.vision_patch_size}) gives {patches} patches, more than {MAX_IMAGE_TOKENS}')
        if self.vision_heads < 1 or self.vision_width % self.vision_heads:
            raise ValueError(f'config vision_width ({self.vision_width}) must be at least 64 and divisible by '
                             f'its number of heads, width // 64')
        if self.transformer_heads > self.transformer_width or self.transformer_width % self.transformer_heads:
            raise ValueError(f'config transformer_width ({self.transformer_width}) must be divisible by '
                             f'transformer_heads ({self.transformer_heads})')

    @property
    def vision_heads(self) -> int:
        return self.vision_width // 64

    @property
    def image_mean(self) -> Tuple[float, float, float]:
        return tuple(self.mean) if self.mean else OPENAI_MEAN

    @property
    def image_std(self) -> Tuple[float, float, float]:
        return tuple(self.std) if self.std else OPENAI_STD

    @classmethod
    def from_dict(cls, data: dict, source: str = 'config') -> 'CLIPConfig':
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING}
        missing = sorted(required - data.keys())
        if missing:
            raise ValueError(f'{source} is missing keys {missing}; a RuCLIP config needs {sorted(required)}')
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_file(cls, path) -> 'CLIPConfig':
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'config file not found: {path} (a RuCLIP folder holds config.json, '
                                    f'pytorch_model.bin and bpe.model)')
        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f'{path} is not valid JSON: {error}') from None
        if not isinstance(data, dict):
            raise ValueError(f'{path} must hold a JSON object, got {type(data).__name__}')
        try:
            return cls.from_dict(data, source=path)
        except TypeError as error:
            raise ValueError(f'{path}: {error}') from None

    def to_dict(self) -> dict:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items() if v is not None}
