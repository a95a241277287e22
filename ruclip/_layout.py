"""The names, shapes and dtypes of a RuCLIP checkpoint's tensors, known from its config alone.

A checkpoint is checked against them before the network is built, so a config.json that does not
match its weights (or absurd sizes, a typo's 100000 layers) is named before anything is allocated.
tests/test_config_validation.py holds parameter_shapes equal to CLIP's own state_dict.
"""
from typing import Dict, Mapping, Tuple

import torch

from .config import CLIPConfig

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def parameter_shapes(config: CLIPConfig) -> Dict[str, Tuple[int, ...]]:
    """Every tensor of CLIP.from_config(config).state_dict(), name -> shape."""
    grid = config.image_resolution // config.vision_patch_size
    patch, vision, text = config.vision_patch_size, config.vision_width, config.transformer_width
    shapes = {
        'positional_embedding': (config.context_length, text),
        'text_projection': (text, config.embed_dim),
        'logit_scale': (),
        'visual.class_embedding': (vision,),
        'visual.positional_embedding': (grid * grid + 1, vision),
        'visual.proj': (vision, config.embed_dim),
        'visual.conv1.weight': (vision, 3, patch, patch),
        'token_embedding.weight': (config.vocab_size, text),
    }
    for prefix, width in (('visual.ln_pre', vision), ('visual.ln_post', vision), ('ln_final', text)):
        shapes.update({f'{prefix}.weight': (width,), f'{prefix}.bias': (width,)})
    for tower, width, layers in (('visual.transformer', vision, config.vision_layers),
                                 ('transformer', text, config.transformer_layers)):
        for i in range(layers):
            shapes.update(_block_shapes(f'{tower}.resblocks.{i}.', width))
    return shapes


def _block_shapes(prefix: str, width: int) -> Dict[str, Tuple[int, ...]]:
    return {f'{prefix}{name}': shape for name, shape in [
        ('attn.in_proj_weight', (3 * width, width)), ('attn.in_proj_bias', (3 * width,)),
        ('attn.out_proj.weight', (width, width)), ('attn.out_proj.bias', (width,)),
        ('ln_1.weight', (width,)), ('ln_1.bias', (width,)),
        ('mlp.c_fc.weight', (4 * width, width)), ('mlp.c_fc.bias', (4 * width,)),
        ('mlp.c_proj.weight', (width, 4 * width)), ('mlp.c_proj.bias', (width,)),
        ('ln_2.weight', (width,)), ('ln_2.bias', (width,)),
    ]}


def check_state_dict(state_dict: Mapping[str, torch.Tensor], config: CLIPConfig) -> None:
    """A ValueError listing the missing and unexpected keys, the shapes that differ from `config`'s and
    the tensors that are not floating-point weights; nothing is allocated."""
    expected = parameter_shapes(config)
    missing = sorted(expected.keys() - state_dict.keys())
    unexpected = sorted(state_dict.keys() - expected.keys())
    wrong_shape = [f'{k}: checkpoint {list(state_dict[k].shape)}, config.json {list(shape)}'
                   for k, shape in expected.items() if k in state_dict and tuple(state_dict[k].shape) != shape]
    wrong_dtype = [f'{k}: {str(t.dtype).replace("torch.", "")}' for k, t in state_dict.items()
                   if k in expected and t.dtype not in FLOAT_DTYPES]
    problems = []
    if missing:
        problems.append(f'missing keys {_shorten(missing)}')
    if unexpected:
        problems.append(f'unexpected keys {_shorten(unexpected)}')
    if wrong_shape:
        problems.append(f'shape mismatches {_shorten(wrong_shape)}')
    if problems:
        raise ValueError('checkpoint does not match config.json: ' + '; '.join(problems))
    if wrong_dtype:
        raise ValueError(f'checkpoint tensors must be floating-point weights (float32, float16, bfloat16 or '
                         f'float64), got {_shorten(wrong_dtype)}')


def _shorten(items, limit=5):
    return items if len(items) <= limit else items[:limit] + [f'... {len(items) - limit} more']
