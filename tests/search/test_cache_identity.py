"""The files derived from an index (PATH.cache/: latents, their float16 copy, the faiss index) are used
only when they were derived from this index as it is now and are the bytes written: another index's
cache of the same generation, or damaged bytes, are named and rebuilt, never searched."""
import importlib
import logging
import os
import shutil

import numpy as np
import pytest
import torch

import ruclip
from helpers.library import predictor_for, write_library
from ruclip.search import database, matrix

SCORE_TOLERANCE = 1e-5


@pytest.fixture(scope='module')
def predictor(tiny_checkpoint):
    return predictor_for(tiny_checkpoint)


def build(folder, predictor, seed, faiss=False):
    files = write_library(folder / 'lib', 12, start_seed=seed)
    index = ruclip.ImageIndex(folder / 'x.index', predictor)
    index.update([folder / 'lib'])
    if faiss:
        index.build_approximate('flat')
    index.close()
    return files


def assert_brute_force(index, predictor, files, **options):
    latents = predictor.get_image_latents(files)
    for query in ('кошка', 'закат над морем', 'красный дом'):
        scores = latents @ predictor.get_text_latents([query])[0]
        order = torch.argsort(-scores, stable=True).tolist()
        hits = index.search(query, k=len(files), **options)
        assert [hit.path for hit in hits] == [files[i] for i in order], query
        np.testing.assert_allclose([hit.score for hit in hits], scores[order].numpy(), atol=SCORE_TOLERANCE)


def generation(path):
    connection = database.connect(str(path), readonly=True)
    try:
        return database.meta(connection, 'generation')
    finally:
        connection.close()


@pytest.mark.parametrize('with_faiss', [False, True])
def test_another_index_cache_of_the_same_generation_is_not_used(tmp_path, predictor, caplog, with_faiss):
    if with_faiss:
        importlib.import_module('faiss')
    build(tmp_path / 'a', predictor, seed=0, faiss=with_faiss)
    files = build(tmp_path / 'b', predictor, seed=500, faiss=with_faiss)
    assert generation(tmp_path / 'a' / 'x.index') == generation(tmp_path / 'b' / 'x.index')
    theirs, ours = tmp_path / 'a' / 'x.index.cache', tmp_path / 'b' / 'x.index.cache'
    assert sorted(os.listdir(theirs)) == sorted(os.listdir(ours))  # the same names: only identity tells them apart
    shutil.rmtree(ours)
    shutil.copytree(theirs, ours)
    index = ruclip.ImageIndex(tmp_path / 'b' / 'x.index', predictor)
    with caplog.at_level(logging.WARNING, logger='ruclip'):
        assert_brute_force(index, predictor, files, approximate_search=with_faiss or None)
    assert f'rebuilding the latent cache {ours / "latents-"}' in caplog.text
    if with_faiss:
        assert f'not using the faiss index {ours / "faiss-"}' in caplog.text
        assert index.approximate_report()['rows'] == 12
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='ruclip'):  # rebuilt for this index: used as it is now
        assert_brute_force(ruclip.ImageIndex(tmp_path / 'b' / 'x.index', predictor), predictor, files)
    assert caplog.text == ''


@pytest.mark.parametrize('name', ['latents', 'half', 'ids', 'header', 'faiss'])
def test_damaged_cache_bytes_are_detected_and_rebuilt(tmp_path, predictor, caplog, name):
    if name == 'faiss':
        importlib.import_module('faiss')
    files = build(tmp_path, predictor, seed=0, faiss=name == 'faiss')
    cache = tmp_path / 'x.index.cache'
    suffix = {'header': '.json', 'faiss': '.v2.faiss'}.get(name, '.npy')
    (path,) = [cache / f for f in os.listdir(cache) if f.startswith(f'{"latents" if name == "header" else name}-')
               and f.endswith(suffix)]
    data = bytearray(path.read_bytes())
    if name == 'header':
        at = data.index(b'"rows": ') + 8
        data[at:at + 2] = b'7,'  # a row count of another index
    elif name == 'faiss':
        data[len(data) // 2] ^= 0x40
    else:  # one element in the middle of the array: a float's exponent byte, an id's lowest byte
        itemsize = dict(latents=4, half=2, ids=8)[name]
        start = 10 + int.from_bytes(data[8:10], 'little')  # after the .npy header
        element = start + itemsize * ((len(data) - start) // itemsize // 2)
        data[element + (0 if name == 'ids' else itemsize - 1)] ^= 0x01 if name == 'ids' else 0x40
    path.write_bytes(bytes(data))
    index = ruclip.ImageIndex(tmp_path / 'x.index', predictor)
    with caplog.at_level(logging.WARNING, logger='ruclip'):
        assert_brute_force(index, predictor, files, approximate_search=True if name == 'faiss' else None)
    assert str(cache) in caplog.text and ('faiss' in caplog.text) == (name == 'faiss')
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='ruclip'):  # the rebuilt files are trusted again
        assert_brute_force(ruclip.ImageIndex(tmp_path / 'x.index', predictor), predictor, files,
                           approximate_search=True if name == 'faiss' else None)
    assert caplog.text == ''


def test_opening_a_large_cache_reads_little(tmp_path, monkeypatch):
    """The check reads a sample of a large file, not all of it."""
    rows = np.zeros((40_000, 512), np.float32)  # 80 MB
    np.save(tmp_path / 'big.npy', rows)
    reads = []
    real_open = open

    class Counting:
        def __init__(self, file):
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def seek(self, offset):
            self.file.seek(offset)

        def read(self, size=-1):
            data = self.file.read(size)
            reads.append(len(data))
            return data

    monkeypatch.setattr(matrix, 'open', lambda path, mode='r': Counting(real_open(path, mode)), raising=False)
    first = matrix.file_digest(str(tmp_path / 'big.npy'))
    monkeypatch.undo()
    assert sum(reads) <= matrix.SAMPLED_BLOCKS * matrix.SAMPLED_BLOCK
    data = bytearray((tmp_path / 'big.npy').read_bytes())
    data[-1] ^= 1  # the last block is always sampled
    (tmp_path / 'big.npy').write_bytes(bytes(data))
    assert matrix.file_digest(str(tmp_path / 'big.npy')) != first
