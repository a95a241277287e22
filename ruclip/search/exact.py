"""Exact top-k by cosine similarity over stored latents, one bounded chunk of rows at a time.

With a float16 copy of the latents (HalfLatents, which matrix.py keeps beside the float32 ones) the
search takes two passes: every float16 row is scored (torch's float16 matrix-vector product, which
reads half the bytes), the rows whose float16 score is within twice `rounding_bound` of the k-th best
are kept, and only those are scored again in float32. A float16 score is within `rounding_bound` of
the float32 one, so the rows kept hold the float32 top k: the result is the float32 search's.
"""
import sys
import warnings
from typing import NamedTuple, Optional, Tuple

import numpy as np

CHUNK_BYTES = 64 << 20  # rows of latents multiplied at once: at most this much memory besides the scores


class HalfLatents(NamedTuple):
    """The latents [n, dim] rounded to float16, and the largest float32 row norm among them."""
    rows: np.ndarray
    max_norm: float


def half_latents(latents: np.ndarray) -> Optional[HalfLatents]:
    """latents [n, dim] as float16 for the first pass, or None when float16 cannot hold them."""
    half = np.empty(latents.shape, np.float16)
    max_norm = 0.0
    for start in range(0, len(latents), 65536):
        block = np.asarray(latents[start:start + 65536], dtype=np.float32)
        if not np.isfinite(block).all() or np.abs(block).max(initial=0) > 1e4:  # float16 tops out at 65504
            return None
        half[start:start + 65536] = block
        max_norm = max(max_norm, float(np.linalg.norm(block, axis=1).max(initial=0)))
    return HalfLatents(half, max_norm)


def rounding_bound(query: np.ndarray, max_norm: float) -> float:
    """How far a first-pass score can be from the float32 one, for rows of norm <= max_norm: the
    rounding of both factors and of the score to float16, the float32 sum, subnormals; doubled."""
    dim, query_norm = len(query), float(np.linalg.norm(query))
    relative = 3 * 2.0 ** -11 + dim * 2.0 ** -24 + 2.0 ** -20
    subnormal = 2.0 ** -25 * (np.sqrt(dim) * (max_norm + query_norm) + 1)
    return 2 * (relative * max_norm * query_norm + subnormal)


def top_k(latents: np.ndarray, query: np.ndarray, k: int, rows: Optional[np.ndarray] = None,
          chunk_bytes: int = CHUNK_BYTES, half: Optional[HalfLatents] = None) -> Tuple[np.ndarray, np.ndarray]:
    """(scores [k'], positions [k']) of the k rows of `latents` [n, dim] (a memory map is fine)
    with the highest dot product with `query` [dim], best first, k' = min(k, rows searched).

    The same ranking as sorting latents @ query in full: by score, ties by position, with each
    score computed as in one matrix product. rows: positions to search (sorted), None for all.
    half: the same latents as HalfLatents, for the two-pass search (same result, fewer bytes read), used
        once torch is imported.
    """
    query = np.ascontiguousarray(query, dtype=np.float32)
    # the first pass runs on torch; where it is not imported yet (a search by a stored image in a fresh
    # process), importing it takes longer than the float32 search of a million rows
    if half is not None and 'torch' in sys.modules and min(k, len(latents) if rows is None else len(rows)) > 0:
        bound = rounding_bound(query, half.max_norm)
        candidates, first_scores = _first_pass(half.rows, query, k, rows, bound, chunk_bytes)
        scores, positions = _float32_top_k(latents, query, k, candidates, chunk_bytes)
        found = np.searchsorted(candidates, positions)
        if np.all(np.abs(first_scores[found] - scores) <= bound / 2):
            return scores, positions
        # a float16 score further off than the bound allows (torch asked to sum in float16?): no shortcut
    return _float32_top_k(latents, query, k, rows, chunk_bytes)


def _first_pass(half: np.ndarray, query: np.ndarray, k: int, rows: Optional[np.ndarray], bound: float,
                chunk_bytes: int) -> Tuple[np.ndarray, np.ndarray]:
    """(positions, sorted, and their float16 scores) of every row scoring within 2 * bound of the k-th best."""
    import torch  # numpy has no fast float16 product

    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # a read-only memory map: torch only reads it
        matrix = torch.from_numpy(half)
    vector = torch.from_numpy(query).to(torch.float16)
    n = len(half) if rows is None else len(rows)
    step = max(k, chunk_bytes // max(1, half.shape[1] * half.itemsize))
    threshold = -np.inf
    kept_positions, kept_scores = [], []
    for positions, where in _chunks(n, step, rows):
        scores = (matrix[where if rows is None else torch.from_numpy(where)] @ vector).float().numpy()
        if len(scores) >= k:
            threshold = max(threshold, float(np.partition(scores, len(scores) - k)[len(scores) - k]) - 2 * bound)
        keep = np.flatnonzero(scores >= threshold)
        kept_positions.append(positions[keep])
        kept_scores.append(scores[keep])
    positions, scores = np.concatenate(kept_positions), np.concatenate(kept_scores)
    if len(scores) > k:  # the threshold rose while chunks went by: apply the final one to all
        keep = np.flatnonzero(scores >= np.partition(scores, len(scores) - k)[len(scores) - k] - 2 * bound)
        positions, scores = positions[keep], scores[keep]
    order = np.argsort(positions, kind='stable')
    return positions[order], scores[order]


def _float32_top_k(latents: np.ndarray, query: np.ndarray, k: int, rows: Optional[np.ndarray],
                   chunk_bytes: int) -> Tuple[np.ndarray, np.ndarray]:
    n = len(latents) if rows is None else len(rows)
    k = min(k, n)
    if k == 0:
        return np.empty(0, np.float32), np.empty(0, np.int64)
    step = max(k, chunk_bytes // max(1, latents.shape[1] * latents.itemsize))
    best_scores, best_positions = np.empty(0, np.float32), np.empty(0, np.int64)
    for positions, where in _chunks(n, step, rows):
        scores = latents[where] @ query
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


def _chunks(n: int, step: int, rows: Optional[np.ndarray]):
    """(positions, what indexes them: a slice of the matrix, or those positions) for each chunk of step rows."""
    for start in range(0, n, step):
        if rows is None:
            yield np.arange(start, min(start + step, n)), slice(start, start + step)
        else:
            yield rows[start:start + step], rows[start:start + step]
