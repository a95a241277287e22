"""The stored latents as one contiguous [n, dim] float32 matrix, and the row ids beside it.

Read from the database once per generation and cached beside it as PATH.cache/latents-<generation>.npy
and ids-<generation>.npy (written atomically through ruclip._outputs), then memory-mapped: opening
an index of any size costs no read of its latents, and the OS keeps the pages it needs. When the
cache cannot be written (a read-only index), the matrix is read from the database into memory.
"""
import glob
import logging
import os
import sqlite3
from typing import Tuple

import numpy as np

from . import database

logger = logging.getLogger('ruclip')
READ_ROWS = 65536


def cache_folder(index_path: str) -> str:
    return index_path + '.cache'


def load(connection: sqlite3.Connection, index_path: str, dim: int) -> Tuple[np.ndarray, np.ndarray]:
    """(latents [n, dim] float32, ids [n] int64) for the database's current generation."""
    generation = database.meta(connection, 'generation')
    folder = cache_folder(index_path)
    latents_path, ids_path = (os.path.join(folder, f'{name}-{generation}.npy') for name in ('latents', 'ids'))
    if os.path.isfile(latents_path) and os.path.isfile(ids_path):
        try:
            return np.load(latents_path, mmap_mode='r'), np.load(ids_path)
        except (OSError, ValueError) as error:  # a damaged cache is rebuilt
            logger.warning('rebuilding the latent cache of %s: %s', index_path, error)
    latents, ids = read(connection, dim)
    try:
        write(folder, generation, latents, ids)
    except OSError as error:
        logger.info('latents of %s kept in memory, the cache cannot be written: %s', index_path, error)
    return latents, ids


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


def write(folder: str, generation: int, latents: np.ndarray, ids: np.ndarray) -> None:
    from .._outputs import atomic_open

    os.makedirs(folder, exist_ok=True)
    with atomic_open(os.path.join(folder, f'ids-{generation}.npy')) as file:
        np.save(file, ids)
    with atomic_open(os.path.join(folder, f'latents-{generation}.npy')) as file:
        np.save(file, latents)
    for old in glob.glob(os.path.join(folder, '*-*.npy')) + glob.glob(os.path.join(folder, '*-*.faiss')):
        if not os.path.basename(old).split('-')[1].startswith(f'{generation}.'):
            try:
                os.unlink(old)  # a reader that mapped it keeps its pages
            except OSError:
                pass
