"""TrainingOptions: every option of a fine-tuning run, checked once, recorded in the run folder
and compared when a run is resumed."""
import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Optional, Tuple

from .._checks import count

PRECISIONS = ('auto', 'fp32', 'bf16')
# options that may change between a run and its resume: where and how visibly it runs, not what it computes
RESUMABLE_CHANGES = ('resume', 'overwrite', 'quiet', 'device', 'num_workers', 'cache_dir')


@dataclass(frozen=True)
class TrainingOptions:
    model: str  # a name of ruclip.MODELS or a checkpoint folder
    train: Tuple[str, ...]  # tables, .tar shards, or one ImageFolder
    out: str  # the run folder: the fine-tuned checkpoint in the Hub layout, its record and checkpoints
    val: Optional[Tuple[str, ...]] = None  # validated before training and after each epoch
    zero_shot_check: Optional[str] = None  # a folder of classes: zero-shot accuracy beside each validation
    lock_image: bool = False  # LiT: image tower frozen, its latents computed once
    lock_text: bool = False  # the mirror: text tower frozen, caption latents computed once
    unlocked_blocks: Optional[int] = None  # train only the last N blocks of each trained tower; 0: projections only
    lora: Optional[int] = None  # LoRA rank on the trained blocks' attention and MLP weights
    lora_alpha: Optional[float] = None  # LoRA scale alpha / rank; default: 2 x rank
    epochs: int = 1
    batch_size: int = 64  # the global batch, split across processes
    lr: float = 5e-5  # peak learning rate of AdamW
    weight_decay: float = 0.1  # on matrices only, not on biases, LayerNorms, embeddings, temperature
    warmup: Optional[int] = None  # optimizer steps of linear warm-up; default 5% of the run
    grad_clip: Optional[float] = 1.0  # max global gradient norm; None: no clipping
    grad_accum: int = 1  # batches whose gradients make one optimizer step
    seed: int = 0
    save_every: Optional[int] = None  # optimizer steps between checkpoints (and one after each epoch)
    keep_best: bool = False  # --out gets the weights of the best validation, not the last
    wise_ft: Optional[float] = None  # WiSE-FT: (1 - alpha) x base + alpha x fine-tuned weights
    templates: Optional[Tuple[str, ...]] = None  # for an ImageFolder's class names
    image_column: Optional[str] = None
    caption_column: Optional[str] = None
    precision: str = 'auto'  # auto: bf16 autocast where the device computes bf16 natively, else fp32
    grad_checkpointing: bool = False  # recompute each trained block in backward: less memory, ~30% slower
    device: Optional[str] = None
    cache_dir: Optional[str] = None
    num_workers: Optional[int] = None  # threads decoding images
    resume: bool = False
    overwrite: bool = False
    quiet: bool = False

    def __post_init__(self):
        for name in ('train', 'val', 'templates'):
            value = getattr(self, name)
            if isinstance(value, (str, os.PathLike)):
                value = (value,)
            object.__setattr__(self, name, None if value is None else tuple(os.fspath(v) for v in value))
        object.__setattr__(self, 'model', os.fspath(self.model))
        object.__setattr__(self, 'out', os.fspath(self.out))
        for name in ('epochs', 'batch_size', 'grad_accum'):
            count(name, getattr(self, name))
        for name in ('save_every', 'lora', 'warmup'):
            if getattr(self, name) is not None:
                count(name, getattr(self, name), minimum=0 if name == 'warmup' else 1)
        if self.unlocked_blocks is not None:
            count('unlocked_blocks', self.unlocked_blocks, minimum=0)
        if self.lock_image and self.lock_text:
            raise ValueError('lock_image and lock_text together leave nothing to train; lock one tower at most')
        if self.lora is not None and self.unlocked_blocks == 0:
            raise ValueError('lora adapts blocks, and unlocked_blocks=0 trains none: drop one of them')
        for name, low, high in (('lr', 0, math.inf), ('weight_decay', -1e-12, math.inf), ('wise_ft', 0, 1),
                                ('grad_clip', 0, math.inf), ('lora_alpha', 0, math.inf)):
            value = getattr(self, name)
            if value is None and name in ('wise_ft', 'grad_clip', 'lora_alpha'):
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not low < value <= high:
                raise ValueError(f'{name} must be a number in ({max(low, 0)}, {high}], got {value!r}')
        if self.keep_best and self.val is None:
            raise ValueError('keep_best ranks validations: give val too')
        if self.zero_shot_check is not None:
            object.__setattr__(self, 'zero_shot_check', os.fspath(self.zero_shot_check))
        if self.precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {PRECISIONS}, got {self.precision!r}')

    def to_dict(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    def differences(self, recorded: dict) -> list:
        """'name: recorded -> now' for each option that differs from a recorded run's and may not."""
        now = self.to_dict()
        names = [f.name for f in fields(self) if f.name not in RESUMABLE_CHANGES]
        return [f'{name}: {recorded.get(name)!r} -> {now[name]!r}' for name in names if recorded.get(name) != now[name]]
