"""Approximate top-k with faiss ([faiss]), over the same stored latents as exact search.

The faiss index is built from the cached latent matrix of one generation of the database, labelled
by the rows' ids, and saved beside it as PATH.cache/faiss-<generation>.v2.faiss, with a record of what
it was derived from (the latent cache's source, matrix.derived_from) and its digest: one that does
not match is not used. An update makes a new generation, and `follow` brings the index in step (rows
gone or changed removed, new and changed ones added, the trained cells kept) or, where its kind
cannot or the new size calls for other cells, it is built again; so it never answers with rows
that were removed or misses rows that were added: one of another generation is not used at all.

Kinds, chosen for the size (choose_kind) or asked for:
  'flat'   every latent, exact inner product (faiss's BLAS), below IVF_FROM rows;
  'ivfsq'  inverted lists of 4 sqrt(n) k-means cells holding 8-bit codes of the latents (a quarter of
           their float32 bytes), 1/32 of the cells searched: below IVFPQ_FROM rows;
  'ivfpq'  the same cells holding product-quantised codes (dim / 8 bytes per latent), above;
  'ivf'    the cells holding float32 latents; 'hnsw' a graph (M=32): on request only, 'hnsw' because
           its build is too slow to redo after each update (157 s per 100,000 latents of 512
           dimensions on a 2-core machine).
An IVF index searches the fewest of PROBED_FRACTIONS of its cells (1/64 to 1/8, steps of sqrt 2) that find RECALL_TARGET of the true
10 nearest neighbours of CALIBRATION_QUERIES stored latents (calibrate; itself excluded): that share
and the recall measured are saved beside it (PATH.cache/faiss-<generation>.v2.json) and reported.
top_k asks faiss for RERANK times k candidates and scores them again exactly against the stored
float32 latents, so the scores returned are exact search's; only which rows are found is approximate.
"""
import logging
import math
import os
from typing import Optional, Tuple

import numpy as np

from .._optional import require

IVF_FROM = 50_000
IVFPQ_FROM = 5_000_000
CELLS_PER_SQRT_N = 4  # faiss's guideline: between 4 and 16 sqrt(n) cells
PROBED_FRACTIONS = tuple(2 ** (-e / 2) for e in range(12, 5, -1))  # 1/64 to 1/8 of the cells: calibrate() picks
RECALL_TARGET = 0.95
CALIBRATION_QUERIES = 64
TRAINING_PER_CELL = 40  # k-means training latents per cell (faiss warns below 39)
RERANK = 8
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 128
KINDS = ('flat', 'ivf', 'ivfsq', 'hnsw', 'ivfpq')
logger = logging.getLogger('ruclip')


def faiss():
    return require('faiss', 'faiss', 'approximate search')


def choose_kind(n: int) -> str:
    return 'flat' if n < IVF_FROM else 'ivfsq' if n < IVFPQ_FROM else 'ivfpq'


def path_for(cache_folder: str, generation: int) -> str:
    return os.path.join(cache_folder, f'faiss-{generation}.v2.faiss')


def saved(cache_folder: str) -> Optional[Tuple[int, Optional[str]]]:
    """(generation, path) of the newest faiss index saved in the folder; path None when it is of the
    format before row ids (labelled by position: only good for knowing there was one); None if none."""
    found = []
    for name in os.listdir(cache_folder) if os.path.isdir(cache_folder) else ():
        parts = name.split('.')
        if name.startswith('faiss-') and name.endswith('.faiss') and parts[0][6:].isdigit():
            found.append((int(parts[0][6:]), os.path.join(cache_folder, name) if parts[1:] == ['v2', 'faiss'] else None))
    return max(found, key=lambda item: (item[0], item[1] is not None)) if found else None


def kind_of(index) -> str:
    lib = faiss()
    inner = lib.downcast_index(index.index) if isinstance(index, lib.IndexIDMap) else lib.downcast_index(index)
    for kind, cls in (('flat', lib.IndexFlat), ('hnsw', lib.IndexHNSW), ('ivfsq', lib.IndexIVFScalarQuantizer),
                      ('ivfpq', lib.IndexIVFPQ), ('ivf', lib.IndexIVFFlat)):
        if isinstance(inner, cls):
            return kind
    raise ValueError(f'not a faiss index ruclip builds: {type(inner).__name__}')


def cells_for(n: int) -> int:
    return max(1, min(int(CELLS_PER_SQRT_N * math.sqrt(n)), n // TRAINING_PER_CELL))


def build(latents: np.ndarray, ids: np.ndarray, kind: Optional[str] = None):
    """A faiss index over latents [n, dim] labelled by ids [n] (int64), of `kind` or the one for the size."""
    lib = faiss()
    n, dim = latents.shape
    kind = kind or choose_kind(n)
    if kind not in KINDS:
        raise ValueError(f'unknown approximate index kind {kind!r}; choose one of {list(KINDS)}')
    if kind == 'flat':
        index = lib.IndexIDMap2(lib.IndexFlatIP(dim))
    elif kind == 'hnsw':
        graph = lib.IndexHNSWFlat(dim, HNSW_M, lib.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index = lib.IndexIDMap(graph)
    else:
        cells = cells_for(n)
        quantizer = lib.IndexFlatIP(dim)
        if kind == 'ivf':
            index = lib.IndexIVFFlat(quantizer, dim, cells, lib.METRIC_INNER_PRODUCT)
        elif kind == 'ivfsq':
            index = lib.IndexIVFScalarQuantizer(quantizer, dim, cells, lib.ScalarQuantizer.QT_8bit,
                                                lib.METRIC_INNER_PRODUCT)
        else:
            codes = next(m for m in (dim // 8, dim // 4, dim // 2, dim) if dim % m == 0)
            bits = int(min(8, max(1, np.log2(n / 39))))  # faiss trains 2**bits centroids per code on >= 39 x as many
            index = lib.IndexIVFPQ(quantizer, dim, cells, codes, bits, lib.METRIC_INNER_PRODUCT)
        sample = np.sort(np.random.default_rng(0).choice(n, min(n, TRAINING_PER_CELL * cells), replace=False))
        index.train(np.ascontiguousarray(latents[sample], dtype=np.float32))
        index.nprobe = max(1, math.ceil(cells * PROBED_FRACTIONS[2]))  # until calibrate() picks
    _add(index, latents, np.asarray(ids, dtype=np.int64))
    return _with_search_settings(index)


def follow(index, old_latents: np.ndarray, old_ids: np.ndarray, latents: np.ndarray, ids: np.ndarray) -> bool:
    """Bring `index`, built over (old_latents, old_ids), in step with (latents, ids): rows gone or changed
    are removed, new and changed ones added. False, the index untouched, when it should be built again
    instead: HNSW (faiss cannot remove from it), a size that calls for another kind than the one the
    index was chosen as, or for fewer than half or more than twice its cells."""
    kind = kind_of(index)
    if kind == 'hnsw' or rebuild_kind(index, len(old_ids), len(ids)) != kind:
        return False
    cells = None if kind == 'flat' else faiss().extract_index_ivf(index).nlist
    if cells is not None and not cells / 2 <= cells_for(len(ids)) <= cells * 2:
        return False
    common, old_at, new_at = np.intersect1d(old_ids, ids, assume_unique=True, return_indices=True)
    changed = np.zeros(len(common), bool)
    for start in range(0, len(common), 1 << 16):
        part = slice(start, start + (1 << 16))
        changed[part] = np.any(np.asarray(old_latents[old_at[part]]) != np.asarray(latents[new_at[part]]), axis=1)
    removed = np.union1d(np.setdiff1d(old_ids, ids, assume_unique=True), common[changed])
    added = np.sort(np.concatenate([np.flatnonzero(~np.isin(ids, old_ids)), new_at[changed]]))
    if len(removed):
        index.remove_ids(np.ascontiguousarray(removed, dtype=np.int64))
    _add(index, latents, ids, added)
    return index.ntotal == len(ids)


def rebuild_kind(index, old_n: int, n: int) -> str:
    """The kind to build for n rows: the one for the size if `index` (of old_n rows) was, else its own."""
    kind = kind_of(index)
    return choose_kind(n) if kind == choose_kind(old_n) else kind


def _add(index, latents: np.ndarray, ids: np.ndarray, positions: Optional[np.ndarray] = None) -> None:
    count = len(ids) if positions is None else len(positions)
    for start in range(0, count, 1 << 16):
        rows = slice(start, start + (1 << 16)) if positions is None else positions[start:start + (1 << 16)]
        index.add_with_ids(np.ascontiguousarray(latents[rows], dtype=np.float32),
                           np.ascontiguousarray(ids[rows], dtype=np.int64))


def calibrate(index, latents: np.ndarray, ids: np.ndarray, half=None) -> dict:
    """Set an IVF index's nprobe to the fewest cells reaching RECALL_TARGET (else the most tried), for
    CALIBRATION_QUERIES stored latents as queries; what was measured: kind, rows, cells, nprobe,
    recall_at_10 (against exact search), queries. Other kinds are measured at their settings.
    half: exact.HalfLatents of the latents, for a faster exact search."""
    from . import exact

    picked = np.sort(np.random.default_rng(1).choice(len(ids), min(len(ids), CALIBRATION_QUERIES), replace=False))
    queries = np.asarray(latents[picked], dtype=np.float32)
    truth = [set(exact.top_k(latents, query, 11, half=half)[1].tolist()) - {int(position)}
             for query, position in zip(queries, picked)]

    def recall() -> float:
        found = [set(top_k(index, query, 11, latents, ids)[1].tolist()) - {int(position)}
                 for query, position in zip(queries, picked)]
        return float(np.mean([len(a & b) / max(1, len(b)) for a, b in zip(found, truth)]))

    ivf = faiss().extract_index_ivf(index) if kind_of(index) in ('ivf', 'ivfsq', 'ivfpq') else None
    if ivf is None:
        measured = recall()
    else:
        for fraction in PROBED_FRACTIONS:
            ivf.nprobe = max(1, math.ceil(ivf.nlist * fraction))
            measured = recall()
            if measured >= RECALL_TARGET:
                break
    return dict(kind=kind_of(index), rows=int(index.ntotal), cells=ivf.nlist if ivf else None,
                nprobe=ivf.nprobe if ivf else None, recall_at_10=round(measured, 4), queries=len(picked))


def save(index, path: str, report: dict, source: dict) -> None:
    """The index at path (nprobe included), then beside it, as PATH minus .faiss + .json, its record:
    the calibration report and what it was derived from (`source`, matrix.derived_from) with the
    index file's size and digest, checked by load."""
    import json

    from .._outputs import atomic_open, replacing
    from .matrix import file_digest

    with replacing(path) as temporary:
        faiss().write_index(index, temporary)
    derived = dict(source=source, bytes=os.path.getsize(path), digest=file_digest(path))
    with atomic_open(report_path(path), 'w', encoding='utf-8') as file:
        json.dump(dict(report, derived=derived), file)


def report_path(path: str) -> str:
    return path[:-len('.faiss')] + '.json'


def load(path: str, source: Optional[dict] = None) -> Optional[Tuple[object, dict, dict]]:
    """(the faiss index saved at path, with its search settings; its calibration report; what it was
    derived from), or None, named in a warning, when it has no record, was derived from another
    source than `source` (None: any) or is not the file its record describes."""
    import json

    from .matrix import file_digest

    try:
        with open(report_path(path), encoding='utf-8') as file:
            report = json.load(file)
        derived = report.pop('derived')
        if source is not None and derived['source'] != source:
            raise ValueError(f'it was derived from {derived["source"]}, not from the index as it is now ({source})')
        if os.path.getsize(path) != derived['bytes'] or file_digest(path) != derived['digest']:
            raise ValueError('it is not the file its record describes (size or content changed)')
        return _with_search_settings(faiss().read_index(path)), report, derived['source']
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:  # faiss raises RuntimeError
        logger.warning('not using the faiss index %s (built again when needed): %s', path, error)
        return None


def _with_search_settings(index):
    """HNSW's efSearch, and an IVF index searching one query's cells on all threads (faiss's default
    splits queries between them); nprobe is the index's own (saved with it, set by calibrate)."""
    lib = faiss()
    if isinstance(index, lib.IndexHNSW):
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif isinstance(index, lib.IndexIVF):
        index.parallel_mode = 1
    elif isinstance(index, lib.IndexIDMap):
        _with_search_settings(lib.downcast_index(index.index))
    return index


def top_k(index, query: np.ndarray, k: int, latents: np.ndarray, ids: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(scores, positions in latents [n, dim] / ids [n], sorted) of the approximate top k, best first: RERANK * k
    candidates found by faiss, scored again exactly (the scores, and the order of the rows found, are exact
    search's)."""
    from . import exact

    query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
    _, labels = index.search(query, min(RERANK * k, index.ntotal))
    labels = labels[0][labels[0] >= 0]
    positions = np.searchsorted(ids, labels)
    if np.any(positions >= len(ids)) or np.any(ids[np.minimum(positions, len(ids) - 1)] != labels):
        raise RuntimeError('the faiss index holds rows the latents do not: it is of another generation')
    return exact.top_k(latents, query[0], k, rows=np.sort(positions))
