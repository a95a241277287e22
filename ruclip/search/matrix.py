"""The stored latents as one contiguous [n, dim] float32 matrix, the row ids beside it, and a float16
copy for exact search's first pass (exact.HalfLatents).

Read from the database once per generation and cached beside it as PATH.cache/latents-<generation>.npy,
ids-<generation>.npy, half-<generation>.npy and half-<generation>.json (its largest row norm), written
atomically through ruclip._outputs, then memory-mapped: opening an index of any size costs no read of
its latents, and the OS keeps the pages it needs. When the cache cannot be written (a read-only index),
the float32 matrix is read from the database into memory and searched without the float16 pass.
"""
import glob
import json
import logging
import os
import sqlite3
from typing import NamedTuple, Optional, Tuple

import numpy as np

from . import database, exact

logger = logging.getLogger('ruclip')
READ_ROWS = 65536


def cache_folder(index_path: str) -> str:
    return index_path + '.cache'


class Stored(NamedTuple):
    latents: np.ndarray  # [n, dim] float32, in id order
    ids: np.ndarray  # [n] int64
    half: Optional[exact.HalfLatents]  # the same latents in float16, None when not cached


def load(connection: sqlite3.Connection, index_path: str, dim: int) -> Stored:
    """The latents of the database's current generation."""
    generation = database.meta(connection, 'generation')
    stored = cached(cache_folder(index_path), generation)
    if stored is not None:
        return stored
    latents, ids = read(connection, dim)
    try:
        half = write(cache_folder(index_path), generation, latents, ids)
    except OSError as error:
        logger.info('latents of %s kept in memory, the cache cannot be written: %s', index_path, error)
        half = None
    return Stored(latents, ids, half)


def cached(folder: str, generation: int) -> Optional[Stored]:
    """The cache files of `generation`, memory-mapped, or None when they are not all there (or damaged)."""
    latents_path, ids_path, half_path, norm_path = (os.path.join(folder, f'{name}-{generation}.{extension}')
                                                    for name, extension in (('latents', 'npy'), ('ids', 'npy'),
                                                                            ('half', 'npy'), ('half', 'json')))
    if not (os.path.isfile(latents_path) and os.path.isfile(ids_path)):  # written last: the float16 ones are done
        return None
    try:
        half = None
        if os.path.isfile(half_path):
            with open(norm_path, encoding='utf-8') as file:
                half = exact.HalfLatents(np.load(half_path, mmap_mode='r'), float(json.load(file)['max_norm']))
        return Stored(np.load(latents_path, mmap_mode='r'), np.load(ids_path), half)
    except (OSError, ValueError, KeyError, TypeError) as error:  # a damaged cache is rebuilt
        logger.warning('rebuilding the latent cache in %s: %s', folder, error)
        return None


def read(connection: sqlite3.Connection, dim: int) -> Tuple[np.ndarray, np.ndarray]:
    """Every row's latent, in id order, read in one snapshot of the database."""
    connection.execute('BEGIN')
    try:
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
    return latents, ids


def write(folder: str, generation: int, latents: np.ndarray, ids: np.ndarray) -> Optional[exact.HalfLatents]:
    """The cache files of one generation, float32 latents last (load takes the rest as written when they
    are there); the float16 copy, memory-mapped, or None when float16 cannot hold these latents."""
    from .._outputs import atomic_open

    os.makedirs(folder, exist_ok=True)
    half = exact.half_latents(latents)
    if half is not None:
        with atomic_open(os.path.join(folder, f'half-{generation}.json'), 'w', encoding='utf-8') as file:
            json.dump(dict(max_norm=half.max_norm), file)
        with atomic_open(os.path.join(folder, f'half-{generation}.npy')) as file:
            np.save(file, half.rows)
        half = exact.HalfLatents(np.load(os.path.join(folder, f'half-{generation}.npy'), mmap_mode='r'), half.max_norm)
    with atomic_open(os.path.join(folder, f'ids-{generation}.npy')) as file:
        np.save(file, ids)
    with atomic_open(os.path.join(folder, f'latents-{generation}.npy')) as file:
        np.save(file, latents)
    for old in glob.glob(os.path.join(folder, '*-*.npy')) + glob.glob(os.path.join(folder, '*-*.faiss')) + \
            glob.glob(os.path.join(folder, '*-*.json')):
        if not os.path.basename(old).split('-')[1].startswith(f'{generation}.'):
            try:
                os.unlink(old)  # a reader that mapped it keeps its pages
            except OSError:
                pass
    return half
