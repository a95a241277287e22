"""MODELS and load(): the six RuCLIP checkpoints from the Hugging Face Hub, its cache, or a folder."""
import os
from typing import Optional, Tuple, Union

import torch

from .model import CLIP, resolve_device, resolve_dtype
from .processor import RuCLIPProcessor

CHECKPOINT_FILES = ['bpe.model', 'config.json', 'pytorch_model.bin']
MODELS = {
    name: dict(repo_id=f'ai-forever/{name}', filenames=list(CHECKPOINT_FILES))
    for name in [
        'ruclip-vit-base-patch32-224',
        'ruclip-vit-base-patch16-224',
        'ruclip-vit-large-patch14-224',
        'ruclip-vit-large-patch14-336',
        'ruclip-vit-base-patch32-384',
        'ruclip-vit-base-patch16-384',
    ]
}


def load(name: str, device: Union[str, torch.device] = 'cpu', cache_dir: Optional[str] = None,
         use_auth_token: Optional[Union[str, bool]] = None, *, revision: Optional[str] = None,
         token: Optional[Union[str, bool]] = None, local_files_only: bool = False,
         dtype: Optional[torch.dtype] = None) -> Tuple[CLIP, RuCLIPProcessor]:
    """Load a RuCLIP model and its processor.

    name: a key of ruclip.MODELS (downloaded from the Hub into the standard Hugging Face cache, or
        `cache_dir`), or a folder holding config.json, bpe.model and pytorch_model.bin or
        model.safetensors.
    local_files_only: never touch the network, use the cache only (as does HF_HUB_OFFLINE=1).
    token: a Hub token for private copies; `use_auth_token` is its old name.
    dtype: torch.float32 (default), torch.float16 or torch.bfloat16.
    Returns (clip, processor), the model in eval mode on `device`.
    """
    dtype, device = resolve_dtype(dtype), resolve_device(device)  # before any download
    folder = checkpoint_folder(name, cache_dir=cache_dir, revision=revision,
                               token=token if token is not None else use_auth_token,
                               local_files_only=local_files_only)
    clip = CLIP.from_pretrained(folder, dtype=dtype, device=device)
    return clip, RuCLIPProcessor.from_config(clip.config, os.path.join(folder, 'bpe.model'))


def checkpoint_folder(name: str, cache_dir=None, revision=None, token=None, local_files_only=False) -> str:
    """The local folder holding the checkpoint `name`, downloading its files if needed."""
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f'model name must be a str, got {type(name).__name__}')
    name = os.fspath(name)
    if name in MODELS:
        flat = os.path.join(os.fspath(cache_dir), name) if cache_dir is not None else None
        if flat and revision is None and all(os.path.isfile(os.path.join(flat, f)) for f in CHECKPOINT_FILES):
            return flat  # the original's cache layout, <cache_dir>/<name>/<file>
        return _download(MODELS[name]['repo_id'], cache_dir, revision, token, local_files_only)
    if os.path.isdir(name):
        for filename in ('config.json', 'bpe.model'):
            if not os.path.isfile(os.path.join(name, filename)):
                raise FileNotFoundError(f'{name} has no {filename}: a RuCLIP folder holds config.json, '
                                        f'bpe.model and pytorch_model.bin (or model.safetensors)')
        return name
    if os.sep in name or name.startswith('.'):
        raise FileNotFoundError(f'no such checkpoint folder: {name}')
    raise ValueError(f'Unknown model {name!r}; choose one of {list(MODELS)} or give a checkpoint folder')


def _download(repo_id, cache_dir, revision, token, local_files_only) -> str:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    paths = []
    for filename in CHECKPOINT_FILES:
        try:
            paths.append(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                                         token=token, local_files_only=local_files_only,
                                         library_name='ruclip'))
        except LocalEntryNotFoundError:
            where = cache_dir or 'the Hugging Face cache'
            raise FileNotFoundError(
                f'{repo_id}/{filename} is not in {where} and downloading is off (local_files_only=True or '
                f'HF_HUB_OFFLINE=1) or the Hub cannot be reached; load it once online first') from None
    return os.path.dirname(paths[0])
