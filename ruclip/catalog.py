"""What each model is and whether it is here, without touching the network."""
import os
import re
from dataclasses import asdict, dataclass
from typing import List, Optional

from .checkpoint import WEIGHT_FILES
from .config import CLIPConfig
from .pretrained import CHECKPOINT_FILES, MODELS, checkpoint_folder

NAME = re.compile(r'ruclip-vit-(?P<size>base|large)-patch(?P<patch>\d+)-(?P<resolution>\d+)$')
VIT_SIZE_BY_NAME = {'base': 'B', 'large': 'L'}
VIT_SIZE_BY_WIDTH = {768: 'B', 1024: 'L'}


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
    if name in MODELS:
        match = NAME.match(name)
        patch, resolution = int(match['patch']), int(match['resolution'])
        files = _cached_files(MODELS[name]['repo_id'], cache_dir)
        vit = f'ViT-{VIT_SIZE_BY_NAME[match["size"]]}/{patch}'
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
