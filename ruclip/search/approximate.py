"""Approximate top-k with faiss ([faiss]), over the same stored latents as exact search.

The faiss index is built from the cached latent matrix of one generation of the database and saved
beside it as PATH.cache/faiss-<generation>.faiss; an update makes a new generation, and the next
build (`ruclip index --faiss`, ImageIndex.build_approximate) replaces it, so it never answers with
rows that were removed or misses rows that were added: a stale one is not used at all.
The kind is chosen for the size: 'flat' (exact inner product, faiss's BLAS) below IVF_FROM rows,
'ivf' (inverted lists of sqrt(n) k-means cells, IVF_NPROBE of them searched) below IVFPQ_FROM,
'ivfpq' (the same cells holding product-quantised codes, re-ranked with full latents) above.
'hnsw' (a graph, M=32) is there on request: fast to search, but its build took 157 s per 100,000
latents of 512 dimensions on the benchmark's 2-core machine, too slow to rebuild after each update.
"""
import os
from typing import Optional, Tuple

import numpy as np

from .._optional import require

IVF_FROM = 50_000
IVFPQ_FROM = 5_000_000
IVF_NPROBE = 128  # of sqrt(n) cells: recall@10 0.92 on the benchmark's clustered latents (RESULTS.md)
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 128
KINDS = ('flat', 'ivf', 'hnsw', 'ivfpq')


def faiss():
    return require('faiss', 'faiss', 'approximate search')


def choose_kind(n: int) -> str:
    return 'flat' if n < IVF_FROM else 'ivf' if n < IVFPQ_FROM else 'ivfpq'


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
        lists = max(1, min(int(np.sqrt(n)), n // 39))  # faiss wants >= 39 training points per cell
        quantizer = lib.IndexFlatIP(dim)
        if kind == 'ivf':
            index = lib.IndexIVFFlat(quantizer, dim, lists, lib.METRIC_INNER_PRODUCT)
        else:
            codes = next(m for m in (dim // 8, dim // 4, dim // 2, dim) if dim % m == 0)
            bits = int(min(8, max(1, np.log2(n / 39))))  # faiss trains 2**bits centroids per code on >= 39 x as many
            index = lib.IndexIVFPQ(quantizer, dim, lists, codes, bits, lib.METRIC_INNER_PRODUCT)
        sample = np.sort(np.random.default_rng(0).choice(n, min(n, 64 * lists), replace=False))
        index.train(np.ascontiguousarray(latents[sample], dtype=np.float32))
        index.nprobe = IVF_NPROBE
        if kind == 'ivfpq':
            refined = lib.IndexRefineFlat(index)
            refined.k_factor = 8
            index = refined
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
    elif isinstance(index, lib.IndexIVF):
        index.nprobe = IVF_NPROBE
    elif isinstance(index, lib.IndexRefine):
        lib.extract_index_ivf(index.base_index).nprobe = IVF_NPROBE
        index.k_factor = 8
    return index


def top_k(index, query: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """(scores, positions) of the approximate top k, best first."""
    k = min(k, index.ntotal)
    scores, positions = index.search(np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1), k)
    keep = positions[0] >= 0
    return scores[0][keep], positions[0][keep].astype(np.int64)
