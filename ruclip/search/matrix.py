"""The stored latents as one contiguous [n, dim] float32 matrix, the row ids beside it, and a float16
copy for exact search's first pass (exact.HalfLatents).

Read from the database once per change and cached beside it as PATH.cache/latents-<generation>.npy,
ids-<generation>.npy and half-<generation>.npy, then memory-mapped: opening an index of any size costs
no read of its latents, and the OS keeps the pages it needs. latents-<generation>.json, written
last, is the cache's header: what it was derived from (the database's contents id, which every
commit renews, its generation and the model's fingerprint: derived_from), the float16 copy's largest
row norm, and each file's size and digest (file_digest). A cache is used only when its header
matches the database and every file its size and digest; otherwise it is named in a warning and
rebuilt, so another index's cache, an older one or damaged bytes never give a wrong ranking. When
the cache cannot be written (a read-only folder), the float32 matrix is read from the database into
memory and searched without the float16 pass.
"""
import glob
import hashlib
import json
import logging
import os
import sqlite3
from typing import NamedTuple, Optional, Tuple

import numpy as np

from . import exact

logger = logging.getLogger('ruclip')
READ_ROWS = 65536
FULL_DIGEST_BYTES = 16 << 20  # a file up to this size is digested whole (~20 ms), a larger one by samples
SAMPLED_BLOCKS = 64  # blocks of SAMPLED_BLOCK bytes spread evenly over a larger file, the first and last included
SAMPLED_BLOCK = 16384  # 64 reads of 16 KiB: 1 MiB, few seeks on a disk that seeks slowly


def cache_folder(index_path: str) -> str:
    return index_path + '.cache'


class Stored(NamedTuple):
    latents: np.ndarray  # [n, dim] float32, in id order
    ids: np.ndarray  # [n] int64
    half: Optional[exact.HalfLatents]  # the same latents in float16, None when not cached
    source: dict  # what they were read from: derived_from()


def derived_from(connection: sqlite3.Connection, index_path: str, model: str) -> dict:
    """What a file derived from the database's latents now is derived from: {contents, generation,
    model}, contents the database's random contents id (for an index of an earlier ruclip, which has
    none until its first change, its real path), model the fingerprint of the index's model."""
    recorded = {key: json.loads(value) for key, value in connection.execute(
        "SELECT key, value FROM meta WHERE key IN ('contents', 'generation')")}
    contents = recorded.get('contents') or f'{os.path.realpath(index_path)}, before contents ids'
    return dict(contents=contents, generation=recorded['generation'], model=model)


def load(connection: sqlite3.Connection, index_path: str, dim: int, model: str) -> Stored:
    """The latents of the database's current contents, from the cache when it holds them."""
    folder = cache_folder(index_path)
    source = derived_from(connection, index_path, model)
    stored = cached(folder, source['generation'], source)
    if stored is not None:
        return stored
    latents, ids, source = read(connection, dim, index_path, model)
    try:
        half = write(folder, source, latents, ids)
    except OSError as error:
        logger.info('latents of %s kept in memory, the cache cannot be written: %s', index_path, error)
        half = None
    return Stored(latents, ids, half, source)


def header_path(folder: str, generation: int) -> str:
    return os.path.join(folder, f'latents-{generation}.json')


def cached(folder: str, generation: int, source: Optional[dict] = None) -> Optional[Stored]:
    """The cache files of `generation`, memory-mapped, or None when they are not there, or (named
    in a warning) when they were derived from another source than `source` (None: any), or their
    sizes, digests or shapes are not those their header records."""
    path = header_path(folder, generation)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as file:
            header = json.load(file)
        if source is not None and header['source'] != source:
            raise ValueError(f'it was derived from {header["source"]}, not from the index as it is now ({source})')
        arrays = {}
        for name, recorded in header['files'].items():
            array_path = os.path.join(folder, f'{name}-{generation}.npy')
            if os.path.getsize(array_path) != recorded['bytes'] or file_digest(array_path) != recorded['digest']:
                raise ValueError(f'{array_path} is not the file it records (size or content changed)')
            arrays[name] = np.load(array_path, mmap_mode='r')
        latents, ids = arrays['latents'], np.asarray(arrays['ids'])
        rows = header['rows']
        if latents.shape != (rows, header['dim']) or latents.dtype != np.float32 or ids.shape != (rows,):
            raise ValueError(f'it records {rows} rows of {header["dim"]}, its files hold others')
        half = None
        if 'half' in arrays:
            if arrays['half'].shape != latents.shape:
                raise ValueError('its float16 copy is not the shape of its latents')
            half = exact.HalfLatents(arrays['half'], float(header['max_norm']))
        return Stored(latents, ids, half, header['source'])
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.warning('rebuilding the latent cache %s: %s', path, error)
        return None


def file_digest(path: str) -> str:
    """blake2b of the file's size and bytes: all of them up to FULL_DIGEST_BYTES, else SAMPLED_BLOCKS
    blocks spread over it, so that checking a 2 GB cache reads 1 MiB in 64 places (a truncated, replaced or
    rewritten file is always told apart; a few flipped bytes in a large file only where sampled)."""
    size = os.path.getsize(path)
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, 'rb') as file:
        if size <= FULL_DIGEST_BYTES:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
        else:
            for block in range(SAMPLED_BLOCKS):
                file.seek((size - SAMPLED_BLOCK) * block // (SAMPLED_BLOCKS - 1))
                digest.update(file.read(SAMPLED_BLOCK))
    return digest.hexdigest()


def read(connection: sqlite3.Connection, dim: int, index_path: str, model: str) -> Tuple[np.ndarray, np.ndarray, dict]:
    """Every row's latent, in id order, read in one snapshot of the database, and what they are
    derived from (derived_from, in the same snapshot)."""
    connection.execute('BEGIN')
    try:
        source = derived_from(connection, index_path, model)
        n = connection.execute('SELECT COUNT(*) FROM images').fetchone()[0]
        latents = np.empty((n, dim), dtype=np.float32)
        ids = np.empty(n, dtype=np.int64)
        cursor = connection.execute('SELECT id, latent FROM images ORDER BY id')
        row = 0
        while rows := cursor.fetchmany(READ_ROWS):
            ids[row:row + len(rows)] = [row_id for row_id, _ in rows]
            latents[row:row + len(rows)] = np.frombuffer(b''.join(blob for _, blob in rows),
                                                         dtype=np.float32).reshape(len(rows), dim)
            row += len(rows)
    finally:
        connection.execute('COMMIT')
    return latents, ids, source


def write(folder: str, source: dict, latents: np.ndarray, ids: np.ndarray) -> Optional[exact.HalfLatents]:
    """The cache files of `source`, its header last (cached takes nothing without it); the float16
    copy, memory-mapped, or None when float16 cannot hold these latents. Deletes the files of
    other generations."""
    from .._outputs import atomic_open

    os.makedirs(folder, exist_ok=True)
    generation = source['generation']
    half = exact.half_latents(latents)
    arrays = dict(ids=ids, latents=latents) if half is None else dict(half=half.rows, ids=ids, latents=latents)
    files = {}
    for name, array in arrays.items():
        path = os.path.join(folder, f'{name}-{generation}.npy')
        with atomic_open(path) as file:
            np.save(file, array)
        files[name] = dict(bytes=os.path.getsize(path), digest=file_digest(path))
    header = dict(source=source, rows=len(ids), dim=latents.shape[1], files=files,
                  max_norm=None if half is None else half.max_norm)
    with atomic_open(header_path(folder, generation), 'w', encoding='utf-8') as file:
        json.dump(header, file)
    if half is not None:
        half = exact.HalfLatents(np.load(os.path.join(folder, f'half-{generation}.npy'), mmap_mode='r'), half.max_norm)
    for old in glob.glob(os.path.join(folder, '*-*.npy')) + glob.glob(os.path.join(folder, '*-*.faiss')) + \
            glob.glob(os.path.join(folder, '*-*.json')):
        if not os.path.basename(old).split('-')[1].startswith(f'{generation}.'):
            try:
                os.unlink(old)  # a reader that mapped it keeps its pages
            except OSError:
                pass
    return half
