"""The six published RuCLIP checkpoints (MODELS), load() from the Hub, its cache or a folder, and
describe_models(): what each model is and whether it is here, without touching the network."""
import os
from dataclasses import asdict, dataclass
from typing import List, Optional, Tuple, Union

import torch

from . import backends
from ._device import resolve_device
from ._weights import WEIGHT_FILES
from .config import CLIPConfig
from .model import CLIP
from .processor import RuCLIPProcessor

CHECKPOINT_FILES = ['bpe.model', 'config.json', 'pytorch_model.bin']


@dataclass(frozen=True)
class Pretrained:
    """One published checkpoint: its Hub repo and its vision tower (config.json holds the rest)."""
    name: str
    vit_size: str  # 'B' (width 768) or 'L' (width 1024)
    patch_size: int
    image_size: int

    @property
    def repo_id(self) -> str:
        return f'ai-forever/{self.name}'

    @property
    def vit(self) -> str:
        return f'ViT-{self.vit_size}/{self.patch_size}'


PRETRAINED = {model.name: model for model in [
    Pretrained('ruclip-vit-base-patch32-224', 'B', 32, 224),
    Pretrained('ruclip-vit-base-patch16-224', 'B', 16, 224),
    Pretrained('ruclip-vit-large-patch14-224', 'L', 14, 224),
    Pretrained('ruclip-vit-large-patch14-336', 'L', 14, 336),
    Pretrained('ruclip-vit-base-patch32-384', 'B', 32, 384),
    Pretrained('ruclip-vit-base-patch16-384', 'B', 16, 384),
]}
# the original's form of the registry: name -> dict(repo_id, filenames)
MODELS = {name: dict(repo_id=model.repo_id, filenames=list(CHECKPOINT_FILES)) for name, model in PRETRAINED.items()}
VIT_SIZE_BY_WIDTH = {768: 'B', 1024: 'L'}


def load(name: str, device: Union[str, torch.device] = 'cpu', cache_dir: Optional[str] = None,
         use_auth_token: Optional[Union[str, bool]] = None, *, revision: Optional[str] = None,
         token: Optional[Union[str, bool]] = None, local_files_only: bool = False,
         dtype: Optional[torch.dtype] = None, backend: str = 'torch') -> Tuple[CLIP, RuCLIPProcessor]:
    """Load a RuCLIP model and its processor.

    name: a key of ruclip.MODELS (downloaded from the Hub into the standard Hugging Face cache, or
        `cache_dir`), or a folder holding config.json, bpe.model and pytorch_model.bin or
        model.safetensors.
    local_files_only: never touch the network, use the cache only (as does HF_HUB_OFFLINE=1).
    token: a Hub token for private copies; `use_auth_token` is its old name.
    dtype: torch.float32 (default), torch.float16 or torch.bfloat16; with backend='openvino' also 'int8'.
    backend: 'torch' (default) runs ruclip.CLIP; 'openvino' runs both towers on OpenVINO's CPU runtime
        (pip install 'ruclip[openvino]'), compiled once and cached (ruclip.backends.openvino); 'auto'
        takes OpenVINO when installed and on the CPU, in int8 when it passes the cosine gate, else fp32.
    Returns (clip, processor), the model in eval mode on `device`.
    """
    device = resolve_device(device)
    backend, dtype = backends.resolve(backend, dtype, device)  # before any download
    folder = checkpoint_folder(name, cache_dir=cache_dir, revision=revision,
                               token=token if token is not None else use_auth_token,
                               local_files_only=local_files_only)
    if backend == 'openvino':
        clip = backends.load(folder, dtype)
    else:
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


@dataclass(frozen=True)
class ModelInfo:
    """name: a key of MODELS or a folder; vit: e.g. 'ViT-B/32'; size_bytes: on disk, None if absent."""
    name: str
    vit: str
    patch_size: int
    image_size: int
    cached: bool
    size_bytes: Optional[int]
    folder: Optional[str]

    def to_dict(self) -> dict:
        return asdict(self)


def describe_models(cache_dir: Optional[str] = None) -> List[ModelInfo]:
    """The six models, in MODELS' order, with their state in the Hugging Face cache."""
    return [describe(name, cache_dir) for name in MODELS]


def describe(name: str, cache_dir: Optional[str] = None) -> ModelInfo:
    """One model of MODELS (looked up in the cache at `cache_dir`, the standard one by default) or a
    checkpoint folder (read from its config.json; not cached unless it holds weights)."""
    if name in PRETRAINED:
        model = PRETRAINED[name]
        patch, resolution, vit = model.patch_size, model.image_size, model.vit
        files = _cached_files(model.repo_id, cache_dir)
    else:
        folder = checkpoint_folder(name)  # not a key of MODELS: a folder, checked, never downloaded
        config = CLIPConfig.from_file(os.path.join(folder, 'config.json'))
        patch, resolution, width = config.vision_patch_size, config.image_resolution, config.vision_width
        vit = f'ViT-{VIT_SIZE_BY_WIDTH[width]}/{patch}' if width in VIT_SIZE_BY_WIDTH else f'ViT/{patch}, width {width}'
        has_weights = any(os.path.isfile(os.path.join(folder, weights)) for weights in WEIGHT_FILES)
        files = [path for path in (os.path.join(folder, entry) for entry in sorted(os.listdir(folder)))
                 if os.path.isfile(path)] if has_weights else []
    cached = bool(files)
    return ModelInfo(name=name, vit=vit, patch_size=patch, image_size=resolution, cached=cached,
                     size_bytes=sum(os.path.getsize(path) for path in files) if cached else None,
                     folder=os.path.dirname(files[0]) if cached else None)


def _cached_files(repo_id: str, cache_dir: Optional[str]) -> List[str]:
    """The paths of all CHECKPOINT_FILES in the cache, or [] unless every one is there."""
    from huggingface_hub import try_to_load_from_cache

    paths = [try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir) for filename in CHECKPOINT_FILES]
    return paths if all(isinstance(path, str) for path in paths) else []
