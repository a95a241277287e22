"""Exact top-k by cosine similarity over stored latents, one bounded chunk of rows at a time."""
from typing import Optional, Tuple

import numpy as np

CHUNK_BYTES = 64 << 20  # rows of latents multiplied at once: at most this much memory besides the scores


def top_k(latents: np.ndarray, query: np.ndarray, k: int, rows: Optional[np.ndarray] = None,
          chunk_bytes: int = CHUNK_BYTES) -> Tuple[np.ndarray, np.ndarray]:
    """(scores [k'], positions [k']) of the k rows of `latents` [n, dim] (a memory map is fine)
    with the highest dot product with `query` [dim], best first, k' = min(k, rows searched).

    The same ranking as sorting latents @ query in full: by score, ties by position, with each
    score computed as in one matrix product. rows: positions to search (sorted), None for all.
    """
    n = len(latents) if rows is None else len(rows)
    k = min(k, n)
    if k == 0:
        return np.empty(0, np.float32), np.empty(0, np.int64)
    step = max(k, chunk_bytes // max(1, latents.shape[1] * latents.itemsize))
    best_scores, best_positions = np.empty(0, np.float32), np.empty(0, np.int64)
    query = np.ascontiguousarray(query, dtype=np.float32)
    for start in range(0, n, step):
        if rows is None:
            positions = np.arange(start, min(start + step, n))
            scores = latents[start:start + step] @ query
        else:
            positions = rows[start:start + step]
            scores = latents[positions] @ query
        if len(scores) > k:
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = np.flatnonzero(scores >= kth)  # every tie of the k-th, so ties go by position
            scores, positions = scores[keep], positions[keep]
        best_scores = np.concatenate([best_scores, scores])
        best_positions = np.concatenate([best_positions, positions])
        if len(best_scores) > k:
            order = np.lexsort((best_positions, -best_scores))[:k]
            best_scores, best_positions = best_scores[order], best_positions[order]
    order = np.lexsort((best_positions, -best_scores))
    return best_scores[order], best_positions[order]
