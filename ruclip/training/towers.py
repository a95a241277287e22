"""Which weights train, and how each tower's latents are made during training.

A tower (image: `visual.*`; text: the token and positional embeddings, `transformer.*`,
`ln_final`, `text_projection`) trains wholly, or only its last N blocks and what follows them, or
only its projection, or through LoRA adapters, or not at all (locked). A frozen part is frozen by
requires_grad=False, so autograd records nothing for it, and its weights are never in the
optimizer: they stay bit for bit. What a frozen part computes is computed once where that is
exact: a locked tower's latents, and under projections-only the features its projection reads.
"""
import functools
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from ..model import CLIP

TEXT_PREFIXES = ('token_embedding.', 'positional_embedding', 'transformer.', 'ln_final.', 'text_projection')
LORA_TARGETS = (('attn', 'in_proj_weight'), ('attn.out_proj', 'weight'), ('mlp.c_fc', 'weight'),
                ('mlp.c_proj', 'weight'))


def tower_of(name: str) -> str:
    """'image', 'text' or 'temperature' for a parameter name of CLIP."""
    if name.startswith('visual.'):
        return 'image'
    if name == 'logit_scale':
        return 'temperature'
    if name.startswith(TEXT_PREFIXES):
        return 'text'
    raise ValueError(f'parameter {name} belongs to no tower')


def set_trainable(clip: CLIP, train_image: bool, train_text: bool, unlocked_blocks: Optional[int],
                  lora: Optional[int], lora_alpha: Optional[float]) -> None:
    """requires_grad on exactly the weights that train (LoRA adapters added where asked); the
    learnable temperature always trains."""
    towers = {'image': (train_image, clip.visual.transformer, 'visual.transformer.resblocks.',
                        ('visual.ln_post.', 'visual.proj')),
              'text': (train_text, clip.transformer, 'transformer.resblocks.', ('ln_final.', 'text_projection'))}
    first_trained = {tower: 0 if unlocked_blocks is None else max(0, len(blocks.resblocks) - unlocked_blocks)
                     for tower, (_, blocks, _, _) in towers.items()}
    for name, parameter in clip.named_parameters():
        tower = tower_of(name)
        if tower == 'temperature':
            parameter.requires_grad_(True)
            continue
        trains, _, block_prefix, after_blocks = towers[tower]
        if not trains or lora is not None:
            trains = False
        elif unlocked_blocks == 0:
            trains = name in ('visual.proj', 'text_projection')
        elif unlocked_blocks is not None:
            block = int(name[len(block_prefix):].split('.')[0]) if name.startswith(block_prefix) else None
            trains = name.startswith(after_blocks) or (block is not None and block >= first_trained[tower])
        parameter.requires_grad_(trains)
    if lora is not None:
        for tower, (trains, blocks, _, _) in towers.items():
            if trains:
                for block in blocks.resblocks[first_trained[tower]:]:
                    add_lora(block, lora, lora_alpha or 2.0 * lora)


class LoRA(nn.Module):
    """weight + (B @ A) * alpha / rank, as a parametrization of the weight: every read of the weight
    (F.linear, the fused MLP's addmm) sees the adapted value, and the base weight itself never changes
    until merge_lora writes the sum into it. B starts at zero, so training starts from the base."""

    def __init__(self, weight: torch.Tensor, rank: int, alpha: float):
        super().__init__()
        out_features, in_features = weight.shape
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, in_features, dtype=weight.dtype, device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank, dtype=weight.dtype, device=weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as peft and the LoRA paper's code

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.lora_B @ self.lora_A).to(weight.dtype) * self.scale


def add_lora(block: nn.Module, rank: int, alpha: float) -> None:
    """LoRA on a residual block's attention (in_proj, out_proj) and MLP (c_fc, c_proj) weights."""
    for path, name in LORA_TARGETS:
        module = block.get_submodule(path)
        parametrize.register_parametrization(module, name, LoRA(getattr(module, name), rank, alpha))
        getattr(module.parametrizations, name).original.requires_grad_(False)


def merge_lora(clip: CLIP) -> None:
    """Write each LoRA's sum into its weight and drop the adapters (the model's names are CLIP's again)."""
    for module in list(clip.modules()):
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)


def use_gradient_checkpointing(clip: CLIP) -> None:
    """Recompute each block's activations in backward instead of keeping them (the state_dict is unchanged)."""
    from torch.utils.checkpoint import checkpoint  # imports torch._dynamo: only when asked for

    for transformer in (clip.visual.transformer, clip.transformer):
        for block in transformer.resblocks:
            block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)


class Trainee(nn.Module):
    """The latents of a batch for the loss, from what each tower is given: 'pixels' / 'tokens' (the
    tower runs), 'features' (the frozen tower's output before its projection, which trains) or
    'latents' (a locked tower's, computed once). DistributedDataParallel wraps this module."""

    def __init__(self, clip: CLIP, image_input: str, text_input: str):
        super().__init__()
        self.clip = clip
        self.image_input, self.text_input = image_input, text_input

    def forward(self, images: torch.Tensor, texts: torch.Tensor):
        """-> (image latents [n, dim], text latents [n, dim]) float32, L2-normalised, and the log-temperature."""
        clip = self.clip
        if self.image_input == 'pixels':
            image_latents = clip.encode_image(images)
        elif self.image_input == 'features':
            image_latents = images.to(clip.visual.proj.dtype) @ clip.visual.proj
        else:
            image_latents = images
        if self.text_input == 'tokens':
            text_latents = clip.encode_text(texts)
        elif self.text_input == 'features':
            text_latents = texts.to(clip.text_projection.dtype) @ clip.text_projection
        else:
            text_latents = texts
        return (F.normalize(image_latents.float(), dim=-1), F.normalize(text_latents.float(), dim=-1),
                clip.logit_scale)


def capture_features(module: nn.Module, into: list):
    """A forward hook handle that appends `module`'s outputs (the LayerNorm before a projection) to `into`."""
    return module.register_forward_hook(lambda _module, _inputs, output: into.append(output.float().cpu()))
