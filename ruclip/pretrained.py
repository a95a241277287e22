"""The six published RuCLIP checkpoints (MODELS), load() from the Hub, its cache or a folder, and
describe_models(): what each model is and whether it is here, without touching the network."""
import os
from dataclasses import asdict, dataclass
from typing import List, Optional, Tuple, Union

import torch

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

    Args:
        name: a key of `ruclip.MODELS` (downloaded from the Hub into the standard Hugging Face cache,
            or `cache_dir`), or a folder holding config.json, bpe.model and pytorch_model.bin or
            model.safetensors.
        device: where the model runs: 'cpu', 'cuda', 'cuda:1' or a torch.device.
        cache_dir: the Hub cache to use instead of the standard one. A `cache_dir` filled by the
            original ruclip (`<cache_dir>/<name>/` holding the three files) is used as it is.
        use_auth_token: the old name of `token`.
        revision: the Hub revision (branch, tag or commit) to download.
        token: a Hub token for private copies.
        local_files_only: use the cache only, without a single request (as does HF_HUB_OFFLINE=1).
            Without it, a Hub that cannot be reached is taken as offline at once: the cache is used
            if it holds the files, else FileNotFoundError names the missing one.
        dtype: torch.float32 (None, the default: the original's numbers), torch.bfloat16,
            torch.float16 or their names, or 'auto': bf16 where the device computes it natively
            (CUDA GPUs that support it, CPUs with AMX or AVX512-BF16), else float32. A bf16 or fp16
            asked for on a CPU that only emulates it is used, with a RuntimeWarning (once): it runs
            far slower than float32 there. With backend='openvino': float32 (None), bfloat16 (CPUs
            with bf16 units only), 'int8', or 'auto': int8 when its latents reach a cosine of 0.995
            to fp32 ones on a check set (measured per checkpoint when its int8 model is built), else
            bf16 where the CPU has bf16 units, else fp32.
        backend: 'torch' (default) runs `ruclip.CLIP`; 'openvino' runs both towers on OpenVINO's
            CPU runtime (`pip install '.[openvino]'`), compiled once and cached; 'auto' takes
            OpenVINO when it is installed and the device is the CPU, else torch; with dtype None or
            'auto' OpenVINO runs its 'auto' precision. backend='auto', dtype='auto' is what the
            command line runs by default: the fastest path that keeps the documented accuracy on
            this machine.

    Returns:
        The model (in eval mode, on `device`) and its `RuCLIPProcessor`, as a pair.

    Raises:
        ValueError: an unknown model name (the message lists the six), backend or dtype, or a
            checkpoint whose config or weights fail their checks (each named).
        FileNotFoundError: a folder without config.json or bpe.model, or a file neither cached nor
            downloadable.
        TypeError: `name` is not a str or path.
        ImportError: backend='openvino' without the `openvino` extra.
    """
    from . import backends  # the runtimes: a capability, imported when asked for

    device = resolve_device(device)
    backend, dtype = backends.resolve(backend, dtype, device)  # before any download
    folder = checkpoint_folder(name, cache_dir=cache_dir, revision=revision,
                               token=token if token is not None else use_auth_token,
                               local_files_only=local_files_only)
    if backend == 'openvino':
        clip = backends.load(folder, dtype)
    else:
        clip = CLIP.from_pretrained(folder, dtype=dtype, device=device)
    clip.name_or_path = name if name in MODELS else os.path.abspath(folder)  # what the model's identity names
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
    """The snapshot folder holding the checkpoint's files, downloaded unless they are cached.

    local_files_only (or HF_HUB_OFFLINE=1): the cache is read and nothing else, no HTTP code runs.
    Otherwise the Hub's address is tried once first (HUB_CONNECT_TIMEOUT): when it cannot be
    reached, the cache is used if it holds the files, else the error comes at once, not after the
    Hub client's retries (half a minute).
    """
    import huggingface_hub.constants as constants

    offline = local_files_only or constants.HF_HUB_OFFLINE
    unreachable = None if offline else _unreachable(constants.ENDPOINT)
    if offline or unreachable:
        paths = [_cached(repo_id, filename, cache_dir, revision, unreachable) for filename in CHECKPOINT_FILES]
        return os.path.dirname(paths[0])
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    paths = []
    for filename in CHECKPOINT_FILES:
        try:
            paths.append(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                                         token=token, library_name='ruclip'))
        except LocalEntryNotFoundError:
            raise _not_cached(repo_id, filename, cache_dir, 'the Hub cannot be reached') from None
    return os.path.dirname(paths[0])


HUB_CONNECT_TIMEOUT = 5.0  # seconds to open a connection to the Hub before it is taken as unreachable
PROXY_VARIABLES = ('HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy')


def _unreachable(endpoint: str) -> Optional[str]:
    """Why a TCP connection to `endpoint` cannot be opened, or None when it can (or when a proxy is
    set, which the Hub client goes through instead)."""
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None
    address = urlsplit(endpoint)
    try:
        port = address.port or (443 if address.scheme == 'https' else 80)
        with socket.create_connection((address.hostname, port), timeout=HUB_CONNECT_TIMEOUT):
            return None
    except (OSError, ValueError) as error:
        return f'{endpoint} cannot be reached ({error})'


def _cached(repo_id, filename, cache_dir, revision, unreachable: Optional[str]) -> str:
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    if not isinstance(path, str):
        why = unreachable or 'downloading is off (local_files_only=True or HF_HUB_OFFLINE=1)'
        raise _not_cached(repo_id, filename, cache_dir, why)
    return path


def _not_cached(repo_id, filename, cache_dir, why: str) -> FileNotFoundError:
    where = cache_dir or 'the Hugging Face cache'
    return FileNotFoundError(f'{repo_id}/{filename} is not in {where} and {why}; load it once online first')


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
    """The six models, in MODELS' order, with their state in the Hugging Face cache.

    Reads the cache only: never touches the network.

    Args:
        cache_dir: the Hub cache to look in; the standard one by default.

    Returns:
        One ModelInfo per model, with its name, ViT size, patch and image size, whether it is
        cached, its size on disk and its folder.
    """
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
