"""Random RuCLIP checkpoints at tiny scale, written as the Hub holds them."""
import json
import math
import shutil
from pathlib import Path

import torch

from ruclip import CLIP

TEXT = dict(context_length=77, transformer_width=32, transformer_heads=2, transformer_layers=2)
# The six architectures keep their image resolution and patch size; widths and depths are tiny.
TINY_ARCHITECTURES = {
    'ruclip-vit-base-patch32-224': dict(image_resolution=224, vision_patch_size=32),
    'ruclip-vit-base-patch16-224': dict(image_resolution=224, vision_patch_size=16),
    'ruclip-vit-large-patch14-224': dict(image_resolution=224, vision_patch_size=14, vision_width=128),
    'ruclip-vit-base-patch32-384': dict(image_resolution=384, vision_patch_size=32),
    'ruclip-vit-large-patch14-336': dict(image_resolution=336, vision_patch_size=14, vision_width=128),
    'ruclip-vit-base-patch16-384': dict(image_resolution=384, vision_patch_size=16),
}
for _arch in TINY_ARCHITECTURES.values():
    _arch.setdefault('vision_width', 64)
    _arch.update(TEXT, embed_dim=24, vision_layers=2)


def random_weight(name: str, shape, generator: torch.Generator) -> torch.Tensor:
    """A float32 tensor for parameter `name`, scaled as a trained CLIP's roughly are."""
    noise = torch.randn(shape, generator=generator)
    if name == 'logit_scale':
        return torch.tensor(math.log(1 / 0.07))
    if '.ln_' in name or name.startswith('ln_'):  # LayerNorms away from 1 and 0
        return (1.0 if name.endswith('weight') else 0.0) + 0.1 * noise
    if name.endswith('bias'):
        return 0.1 * noise
    if name == 'token_embedding.weight':
        return 0.02 * noise
    if name == 'positional_embedding':
        return 0.01 * noise
    if name in ('visual.proj', 'text_projection'):  # used as x @ proj: [width, embed_dim]
        return noise * shape[0] ** -0.5
    if name in ('visual.class_embedding', 'visual.positional_embedding'):
        return noise * shape[-1] ** -0.5
    # Linear [out, in] and Conv2d [out, in, k, k]: the std of PyTorch's default init, 1 / sqrt(3 * fan_in)
    return noise * (3 * math.prod(shape[1:])) ** -0.5


def vocab_size_of(bpe_model) -> int:
    from ruclip.tokenizer import BPETokenizer
    return BPETokenizer.from_file(bpe_model).vocab_size


def write_checkpoint(folder, architecture: dict, bpe_model, seed=0, dtype=torch.float32,
                     weights='bin', with_mean_std=True) -> Path:
    """config.json + pytorch_model.bin (or model.safetensors) + bpe.model in `folder`.

    The weights come from a generator of its own seeded with `seed`, not from CLIP's initialisation,
    so changes to the model code never change a test checkpoint (nor the README's pictures).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(architecture, vocab_size=vocab_size_of(bpe_model))
    if with_mean_std:
        config.update(mean=[0.5, 0.45, 0.4], std=[0.25, 0.26, 0.27])
    with torch.device('meta'):  # the names and shapes only
        shapes = CLIP(**{k: v for k, v in config.items() if k not in ('mean', 'std')}).state_dict()
    generator = torch.Generator().manual_seed(seed)
    state_dict = {name: random_weight(name, shapes[name].shape, generator).to(dtype).contiguous()
                  for name in sorted(shapes)}
    if weights == 'safetensors':
        from safetensors.torch import save_file
        save_file(state_dict, str(folder / 'model.safetensors'))
    else:
        torch.save(state_dict, folder / 'pytorch_model.bin')
    (folder / 'config.json').write_text(json.dumps(config, indent=2))
    shutil.copy(bpe_model, folder / 'bpe.model')
    return folder
