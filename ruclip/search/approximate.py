"""Approximate top-k with faiss ([faiss]), over the same stored latents as exact search.

The faiss index is built from the cached latent matrix of one generation of the database and saved
beside it as PATH.cache/faiss-<generation>.faiss; an update makes a new generation, and the next
build (`ruclip index --faiss`, ImageIndex.build_approximate) replaces it, so it never answers with
rows that were removed or misses rows that were added: a stale one is not used at all.
The kind is chosen for the size: 'flat' (exact inner product, faiss's BLAS) below HNSW_FROM rows,
'hnsw' (a graph, M=32) below IVFPQ_FROM, 'ivfpq' (inverted lists of product-quantised codes,
re-ranked with the exact latents) above.
"""
import os
from typing import Optional, Tuple

import numpy as np

from .._optional import require

HNSW_FROM = 50_000
IVFPQ_FROM = 5_000_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 128
KINDS = ('flat', 'hnsw', 'ivfpq')


def faiss():
    return require('faiss', 'faiss', 'approximate search')


def choose_kind(n: int) -> str:
    return 'flat' if n < HNSW_FROM else 'hnsw' if n < IVFPQ_FROM else 'ivfpq'


def path_for(cache_folder: str, generation: int) -> str:
    return os.path.join(cache_folder, f'faiss-{generation}.faiss')


def build(latents: np.ndarray, kind: Optional[str] = None):
    """A faiss index over latents [n, dim] (row i is position i), of `kind` or the one for the size."""
    lib = faiss()
    n, dim = latents.shape
    kind = kind or choose_kind(n)
    if kind not in KINDS:
        raise ValueError(f'unknown approximate index kind {kind!r}; choose one of {list(KINDS)}')
    if kind == 'flat':
        index = lib.IndexFlatIP(dim)
    elif kind == 'hnsw':
        index = lib.IndexHNSWFlat(dim, HNSW_M, lib.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        lists = int(4 * np.sqrt(n))
        quantizer = lib.IndexFlatIP(dim)
        ivf = lib.IndexIVFPQ(quantizer, dim, lists, dim // 8 if dim % 8 == 0 else dim // 4, 8,
                             lib.METRIC_INNER_PRODUCT)
        sample = latents[np.random.default_rng(0).choice(n, min(n, 64 * lists), replace=False)]
        ivf.train(np.ascontiguousarray(sample, dtype=np.float32))
        ivf.nprobe = 64
        index = lib.IndexRefineFlat(ivf)
        index.k_factor = 8
    for start in range(0, n, 1 << 16):
        index.add(np.ascontiguousarray(latents[start:start + (1 << 16)], dtype=np.float32))
    return index


def save(index, path: str) -> None:
    from .._outputs import replacing

    with replacing(path) as temporary:
        faiss().write_index(index, temporary)


def load(path: str):
    """The faiss index saved at path."""
    lib = faiss()
    index = lib.read_index(path)
    if isinstance(index, lib.IndexHNSW):
        index.hnsw.efSearch = HNSW_EF_SEARCH
    return index


def top_k(index, query: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """(scores, positions) of the approximate top k, best first."""
    k = min(k, index.ntotal)
    scores, positions = index.search(np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1), k)
    keep = positions[0] >= 0
    return scores[0][keep], positions[0][keep].astype(np.int64)
