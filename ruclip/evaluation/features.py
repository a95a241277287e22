"""Image latents of an evaluation split, computed once and cached on disk.

The key covers everything that changes the latents: the model (its ruclip.identity.ModelIdentity:
config, tokenizer, weights, backend, precision, preprocessing) and the split (its source and every
image's identity). Zero-shot, linear probe and retrieval on the same split and model reuse one file.
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


def default_cache_dir() -> str:
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'ruclip', 'eval-features')


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
    return _key(predictor, split_fingerprint(split))


def _key(predictor: Predictor, split_print: dict) -> str:
    text = json.dumps([predictor.identity.fingerprint, split_print], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def image_features(predictor: Predictor, split: EvalSplit, cache_dir: Optional[str] = None) -> torch.Tensor:
    """[len(split), embed_dim] float32 L2-normalised image latents, row i for split.images[i].

    cache_dir: None computes them; a folder reads them from <name>-<split>-<key>.npz there when it
    holds them for this model and split, else computes and writes them (atomically). The file
    records the model's identity and the split's fingerprint beside the latents, and its zip CRC
    covers their bytes: one that is damaged, of another model or split, or not [len(split),
    embed_dim] finite float32 is named in a warning and recomputed. An image that cannot be read
    raises an error naming it: leaving it out would shift every label after it.
    """
    path = None
    if cache_dir is not None:
        split_print = split_fingerprint(split)  # stats every file: once
        name = f'{split.name.replace("/", "-")}-{split.split}-{_key(predictor, split_print)}.npz'
        path = os.path.join(os.fspath(cache_dir), name)
        recorded = json.dumps(dict(model=predictor.identity.to_dict(), split=split_print),
                              sort_keys=True, default=str)
        if os.path.isfile(path):
            latents = _cached(path, recorded, (len(split), predictor.identity.embed_dim))
            if latents is not None:
                logger.info('image latents of %s %s from the cache: %s', split.name, split.split, path)
                return torch.from_numpy(latents)
    latents = predictor.get_image_latents(split.images).float().cpu()
    if path is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_open(path) as file:
            np.savez(file, latents=latents.numpy(), recorded=np.array(recorded))
    return latents


def _cached(path: str, recorded: str, shape) -> Optional[np.ndarray]:
    """The latents the cache file at `path` holds, or None (with a warning naming it and why) unless it
    reads whole, records `recorded` and holds `shape` finite float32 latents."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            latents, found = archive['latents'], str(archive['recorded'])
    except Exception as error:  # noqa: BLE001 - whatever a damaged file raises (zipfile, numpy, OS), it is recomputed
        why = f'it cannot be read ({type(error).__name__}: {error})'
    else:
        if found != recorded:
            why = 'it records another model or split'
        elif latents.dtype != np.float32 or latents.shape != shape:
            why = f'it holds {latents.dtype} latents of shape {list(latents.shape)}, expected float32 {list(shape)}'
        elif not np.isfinite(latents).all():
            why = 'it holds inf or NaN latents'
        else:
            return latents
    logger.warning('recomputing the cached image latents %s: %s', path, why)
    return None
