"""Exact search's float16 first pass: the same result as the float32 search, near-ties included."""
import os

import numpy as np
import pytest

import ruclip
from helpers.library import predictor_for, write_library
from ruclip.search import exact, matrix


def near_ties(n=3000, dim=64, seed=0):
    """Unit rows where many differ from others by less than float16 can tell apart."""
    rng = np.random.default_rng(seed)
    latents = rng.normal(size=(n, dim)).astype(np.float32)
    latents /= np.linalg.norm(latents, axis=1, keepdims=True)
    query = latents[7] + 0.05 * rng.normal(size=dim).astype(np.float32)
    for start in (100, 1500, 2900):  # clusters of rows a hair apart, around the best one, across chunks
        latents[start:start + 40] = latents[7] + 1e-5 * rng.normal(size=(40, dim)).astype(np.float32)
    latents[2000:2010] = latents[7]  # exact ties
    return latents, query


def full_sort(latents, query, k, rows=None):
    rows = np.arange(len(latents)) if rows is None else rows
    scores = latents[rows] @ query
    order = np.lexsort((rows, -scores))[:k]
    return scores[order], rows[order]


@pytest.mark.parametrize('chunk_bytes', [1, 5000, 1 << 30])
def test_two_pass_equals_the_float32_search(chunk_bytes):
    latents, query = near_ties()
    half = exact.half_latents(latents)
    for k in (1, 10, 60, 200):
        expected_scores, expected = full_sort(latents, query, k)
        scores, positions = exact.top_k(latents, query, k, chunk_bytes=chunk_bytes, half=half)
        assert positions.tolist() == expected.tolist()
        np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)
    rows = np.arange(1, len(latents), 2)
    _, positions = exact.top_k(latents, query, 25, rows=rows, chunk_bytes=chunk_bytes, half=half)
    assert positions.tolist() == full_sort(latents, query, 25, rows)[1].tolist()


def test_the_rounding_bound_holds_where_float16_is_worst():
    rng = np.random.default_rng(1)
    for dim in (16, 512, 768):
        latents = rng.normal(size=(2000, dim)).astype(np.float32)
        latents[:500] = 1 / np.sqrt(dim)  # every component rounds the same way
        latents[500:1000] = np.abs(latents[500:1000]) * 1e-3  # small and subnormal components
        latents /= np.linalg.norm(latents, axis=1, keepdims=True)
        query = np.abs(rng.normal(size=dim)).astype(np.float32)
        half = exact.half_latents(latents)
        import torch
        first = (torch.from_numpy(half.rows) @ torch.from_numpy(query).half()).float().numpy()
        assert np.abs(first - latents @ query).max() <= exact.rounding_bound(query, half.max_norm) / 2


def rows_about_a_rounding_apart(seed, n=300, dim=64):
    """Rows whose scores differ by about float16's rounding of them (scores near 0.3)."""
    rng = np.random.default_rng(seed)
    base, other = (row / np.linalg.norm(row) for row in rng.normal(size=(2, dim)).astype(np.float32))
    latents = base + 3e-4 * rng.normal(size=(n, dim)).astype(np.float32)
    return latents / np.linalg.norm(latents, axis=1, keepdims=True), 0.3 * base + 0.95 * other


def test_rows_about_a_rounding_apart_rank_as_in_float32():
    for seed in range(20):
        latents, query = rows_about_a_rounding_apart(seed)
        _, positions = exact.top_k(latents, query, 30, half=exact.half_latents(latents))
        assert positions.tolist() == full_sort(latents, query, 30)[1].tolist()


def test_a_first_pass_further_off_than_its_bound_falls_back_to_float32(monkeypatch):
    monkeypatch.setattr(exact, 'rounding_bound', lambda query, max_norm: 0.0)  # as if float16 were exact
    for seed in range(20):  # some of these lose a float32 top-30 row in a float16-only first pass
        latents, query = rows_about_a_rounding_apart(seed)
        _, positions = exact.top_k(latents, query, 30, half=exact.half_latents(latents))
        assert positions.tolist() == full_sort(latents, query, 30)[1].tolist()


def test_latents_float16_cannot_hold_are_searched_in_float32():
    latents = np.ones((10, 4), np.float32)
    latents[3, 0] = 1e5
    assert exact.half_latents(latents) is None
    latents[3, 0] = np.nan
    assert exact.half_latents(latents) is None


def test_the_index_keeps_a_float16_copy_and_searches_with_it(tmp_path, tiny_checkpoint, monkeypatch):
    predictor = predictor_for(tiny_checkpoint)
    write_library(tmp_path / 'lib', 30)
    index = ruclip.ImageIndex(tmp_path / 'lib.index', predictor)
    index.update([tmp_path / 'lib'])
    stored = index._latents()
    assert stored.half is not None and stored.half.rows.dtype == np.float16
    np.testing.assert_array_equal(stored.half.rows, np.asarray(stored.latents).astype(np.float16))
    names = sorted(os.listdir(matrix.cache_folder(index.path)))
    assert [name.split('-')[0] for name in names] == ['half', 'ids', 'latents', 'latents']  # latents-N.json: header
    calls = []
    first_pass = exact._first_pass
    monkeypatch.setattr(exact, '_first_pass', lambda *args: calls.append(1) or first_pass(*args))
    hits = index.search('кошка', k=5)
    assert calls and len(hits) == 5
    reopened = ruclip.ImageIndex(tmp_path / 'lib.index', predictor)
    assert [hit.path for hit in reopened.search('кошка', k=5)] == [hit.path for hit in hits]
    assert len(calls) == 2
