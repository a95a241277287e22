"""Random RuCLIP checkpoints at tiny scale, written as the Hub holds them."""
import json
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


def vocab_size_of(bpe_model) -> int:
    from ruclip.tokenizer import BPETokenizer
    return BPETokenizer.from_file(bpe_model).vocab_size


def write_checkpoint(folder, architecture: dict, bpe_model, seed=0, dtype=torch.float32,
                     weights='bin', with_mean_std=True) -> Path:
    """config.json + pytorch_model.bin (or model.safetensors) + bpe.model in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(architecture, vocab_size=vocab_size_of(bpe_model))
    if with_mean_std:
        config.update(mean=[0.5, 0.45, 0.4], std=[0.25, 0.26, 0.27])
    torch.manual_seed(seed)
    model = CLIP(**{k: v for k, v in config.items() if k not in ('mean', 'std')})
    with torch.no_grad():
        for name, param in model.named_parameters():  # biases and LayerNorms away from 0 and 1
            if name.endswith('bias') or '.ln_' in name or name.startswith('ln_'):
                param.add_(torch.randn_like(param) * 0.1)
    state_dict = {k: v.to(dtype).contiguous() for k, v in model.state_dict().items()}
    if weights == 'safetensors':
        from safetensors.torch import save_file
        save_file(state_dict, str(folder / 'model.safetensors'))
    else:
        torch.save(state_dict, folder / 'pytorch_model.bin')
    (folder / 'config.json').write_text(json.dumps(config, indent=2))
    shutil.copy(bpe_model, folder / 'bpe.model')
    return folder
