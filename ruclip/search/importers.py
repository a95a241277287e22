"""Latents computed elsewhere, taken into an index without re-embedding.

Two layouts: `ruclip embed`'s output (a .npz with arrays latents, files, model and model_identity;
or a .npy of latents with FILE.files.txt, one path a line, and FILE.model.json) and clip-retrieval's
(FOLDER/img_emb/img_emb_<i>.npy beside FOLDER/metadata/metadata_<i>.parquet, whose image_path
column names row j of the same part; `ruclip embed --out FOLDER` adds FOLDER/_manifest.json).
Latents are taken only from the index's model: recorded_model gives the identity (a
ruclip.identity.ModelIdentity's to_dict()) the source records, which the index checks; a source
that records none (clip-retrieval itself, an earlier ruclip) is taken only when the caller vouches
for its model. Their width is checked either way.
Relative paths are taken from the current folder. A path that is a file here is recorded with
its size and mtime, so a later update over its folder sees it unchanged; one that is not (a URL, a
file on another machine) is kept as given and can be searched but is never checked or served.
"""
import glob
import json
import os
import re
from typing import Iterator, List, Optional, Tuple

import numpy as np

ROWS_PER_COMMIT = 65536


def identity_path(npy_path: str) -> str:
    """Where `ruclip embed --out FILE.npy` records the model's identity: FILE.model.json."""
    return npy_path[:-len('.npy')] + '.model.json'


def recorded_model(source: str, layout: str) -> Tuple[Optional[dict], str]:
    """(the model identity `source` records or None, where it is or would be recorded, for messages).
    layout: 'ruclip-embed' (a .npz or .npy) or 'clip-retrieval' (a folder)."""
    if layout == 'clip-retrieval':
        manifest = os.path.join(source, '_manifest.json')
        return (_json_file(manifest) or {}).get('model_identity'), f'{manifest} with a model_identity'
    if source.endswith('.npz'):
        where = f'the model_identity array of {source}'
        with np.load(source, allow_pickle=False) as archive:
            if 'model_identity' not in archive.files:
                return None, where
            try:
                return json.loads(str(archive['model_identity'])), where
            except ValueError:
                raise ValueError(f'{source}: its model_identity array is not JSON') from None
    where = identity_path(source)
    return _json_file(where), where


def _json_file(path: str) -> Optional[dict]:
    if not os.path.isfile(path):
        return None
    with open(path, encoding='utf-8') as file:
        try:
            return json.load(file)
        except ValueError:
            raise ValueError(f'{path} is not valid JSON') from None


def read_ruclip_embed(path: str) -> Iterator[Tuple[np.ndarray, List[str]]]:
    """(latents, files) from `ruclip embed --out path`."""
    if path.endswith('.npz'):
        with np.load(path, allow_pickle=False) as archive:
            missing = {'latents', 'files'} - set(archive.files)
            if missing:
                raise ValueError(f'{path} is not `ruclip embed` output: it lacks the arrays {sorted(missing)}')
            yield archive['latents'], [str(name) for name in archive['files']]
        return
    if not path.endswith('.npy'):
        raise ValueError(f'expected `ruclip embed` output, a .npz or a .npy with its .files.txt, got {path}')
    listing = path[:-len('.npy')] + '.files.txt'
    if not os.path.isfile(listing):
        raise FileNotFoundError(f'{path} needs its list of files, {listing}, which `ruclip embed` writes beside it')
    with open(listing, encoding='utf-8', errors='surrogateescape') as file:
        files = [line.rstrip('\n') for line in file if line.strip()]
    yield np.load(path, mmap_mode='r'), files


def read_clip_retrieval(folder: str) -> Iterator[Tuple[np.ndarray, List[str]]]:
    """(latents, image paths) of each part of a clip-retrieval embeddings folder, in part order."""
    from .._optional import require

    parquet = require('pyarrow.parquet', 'search', 'reading clip-retrieval metadata')
    parts = sorted(glob.glob(os.path.join(folder, 'img_emb', 'img_emb_*.npy')), key=_part_number)
    if not parts:
        raise FileNotFoundError(f'{folder} is not a clip-retrieval embeddings folder: no img_emb/img_emb_*.npy')
    for part in parts:
        metadata = os.path.join(folder, 'metadata', f'metadata_{_part_number(part)}.parquet')
        if not os.path.isfile(metadata):
            raise FileNotFoundError(f'{part} has no metadata beside it: expected {metadata}')
        table = parquet.read_table(metadata)
        if 'image_path' not in table.column_names:
            raise ValueError(f'{metadata} has no image_path column (columns: {table.column_names})')
        yield np.load(part, mmap_mode='r'), [str(name) for name in table.column('image_path').to_pylist()]


def rows(latents: np.ndarray, files: List[str], dim: int, source: str) -> Iterator[List[tuple]]:
    """Rows for the images table, ROWS_PER_COMMIT at a time, latents unit-normalised float32."""
    if latents.ndim != 2 or latents.shape[1] != dim:
        raise ValueError(f'{source}: latents of shape {list(latents.shape)} do not fit this index, whose model '
                         f'makes [n, {dim}] latents')
    if len(files) != len(latents):
        raise ValueError(f'{source}: {len(latents)} latents but {len(files)} file names')
    for start in range(0, len(files), ROWS_PER_COMMIT):
        block = np.asarray(latents[start:start + ROWS_PER_COMMIT], dtype=np.float32)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise ValueError(f'{source}: latents from row {start} hold a zero, inf or NaN vector')
        block = block / norms
        batch = []
        for name, latent in zip(files[start:start + ROWS_PER_COMMIT], block):
            path = name if '://' in name else os.path.abspath(name)
            try:
                stat = os.stat(path)
                size, mtime_ns = stat.st_size, stat.st_mtime_ns
            except (OSError, ValueError):
                size, mtime_ns = -1, -1
            batch.append((os.fsencode(path), size, mtime_ns, None, latent.tobytes()))
        yield batch


def _part_number(path: str) -> int:
    match = re.search(r'_(\d+)\.\w+$', os.path.basename(path))
    return int(match.group(1)) if match else -1
