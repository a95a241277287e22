"""Image latents of an evaluation split, computed once and cached on disk.

The key covers everything that changes the latents: the model (its config, backend, dtype and a
digest of some of its weights, so two checkpoints of one architecture never share an entry), the image
preprocessing (size, mean, std, JPEG draft mode) and the split (its source and every image's
identity). Zero-shot, linear probe and retrieval on the same split and model reuse one file.
"""
import hashlib
import json
import logging
import os
from typing import Optional

import numpy as np
import torch

from .._outputs import atomic_open
from ..predictor import Predictor
from .datasets import EvalSplit

logger = logging.getLogger('ruclip')
DIGESTED_WEIGHTS = ('visual.proj', 'text_projection', 'visual.conv1.weight', 'visual.ln_post.weight')


def default_cache_dir() -> str:
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'ruclip', 'eval-features')


def model_fingerprint(predictor: Predictor) -> dict:
    """What identifies the latents a predictor computes: model config, dtype, weights digest, preprocessing."""
    model, transform = predictor.clip_model, predictor.clip_processor.image_transform
    digest = hashlib.sha256()
    state = model.state_dict()
    for name in DIGESTED_WEIGHTS:
        if name in state:
            digest.update(state[name].detach().float().cpu().numpy().tobytes())
    config = model.config
    fingerprint = {'config': {k: v for k, v in vars(config).items() if isinstance(v, (int, float, str, list, tuple))},
                   'dtype': str(model.dtype), 'weights': digest.hexdigest(),
                   'transform': [transform.size, list(transform.mean), list(transform.std)],
                   'jpeg_draft': bool(predictor.jpeg_draft)}
    backend = getattr(model, 'backend', 'torch')
    if backend != 'torch':  # weights compiled into another runtime: its precision and the weights file name them
        fingerprint.update(backend=backend, dtype=model.precision, weights=model.weights_sha256)
    return fingerprint


def split_fingerprint(split: EvalSplit) -> dict:
    """The split's source and a digest of its images: each file's path, size and modification time,
    or each encoded image's bytes (webdataset samples); in-memory loaders (CIFAR, MNIST) by source."""
    digest = hashlib.sha256()
    first = split.images[0] if len(split) else None
    if isinstance(first, str):
        for path in split.images:
            stat = os.stat(path)
            digest.update(f'{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0'.encode('utf-8', 'surrogateescape'))
    elif isinstance(first, (bytes, bytearray)):
        for data in split.images:
            digest.update(hashlib.sha256(data).digest())
    return {'source': split.source, 'split': split.split, 'n': len(split), 'images': digest.hexdigest()}


def cache_key(predictor: Predictor, split: EvalSplit) -> str:
    text = json.dumps([model_fingerprint(predictor), split_fingerprint(split)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def image_features(predictor: Predictor, split: EvalSplit, cache_dir: Optional[str] = None) -> torch.Tensor:
    """[len(split), embed_dim] float32 L2-normalised image latents, row i for split.images[i].

    cache_dir: None computes them; a folder reads them from <key>.npy there when present, else
    computes and writes them (atomically). An image that cannot be read raises an error naming it:
    leaving it out would shift every label after it.
    """
    path = None
    if cache_dir is not None:
        name = f'{split.name.replace("/", "-")}-{split.split}-{cache_key(predictor, split)}.npy'
        path = os.path.join(os.fspath(cache_dir), name)
        if os.path.isfile(path):
            latents = np.load(path)
            if latents.shape[0] == len(split):
                logger.info('image latents of %s %s from the cache: %s', split.name, split.split, path)
                return torch.from_numpy(latents)
    latents = predictor.get_image_latents(split.images).float().cpu()
    if path is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_open(path) as file:
            np.save(file, latents.numpy())
    return latents
