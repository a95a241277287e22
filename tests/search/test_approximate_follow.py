"""The faiss index follows updates in place (rows gone, changed, new), or is built again when it must."""
import os
from pathlib import Path

import numpy as np
import pytest

import ruclip
from helpers.images import rgb_image
from helpers.library import predictor_for, write_library

faiss = pytest.importorskip('faiss')  # the [faiss] extra; the README's install has it
from ruclip.search import approximate  # noqa: E402


def unit(rows):
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def labels_of(index):
    """Every row id the faiss index holds."""
    if isinstance(index, faiss.IndexIDMap):
        return np.sort(faiss.vector_to_array(index.id_map))
    lists = faiss.extract_index_ivf(index).invlists
    return np.sort(np.concatenate([faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                                   for i in range(lists.nlist)]))


@pytest.mark.parametrize('kind', ['flat', 'ivf', 'ivfsq', 'ivfpq'])
def test_follow_removes_changed_and_gone_rows_and_adds_new_ones(kind):
    rng = np.random.default_rng(0)
    old_ids = np.arange(0, 8000, 2)
    old = unit(rng.normal(size=(len(old_ids), 16)))
    index = approximate.build(old, old_ids, kind)
    keep = np.ones(len(old_ids), bool)
    keep[::7] = False  # gone
    new_ids = np.concatenate([old_ids[keep], np.arange(8001, 8201, 2)])  # and 100 new ones, after them
    new = np.concatenate([old[keep], unit(rng.normal(size=(100, 16)))])
    new[5:40] = unit(rng.normal(size=(35, 16)))  # changed: same ids, other latents
    assert approximate.follow(index, old, old_ids, new, new_ids)
    assert np.array_equal(labels_of(index), new_ids)
    if kind != 'flat':
        faiss.extract_index_ivf(index).nprobe = faiss.extract_index_ivf(index).nlist  # every cell: exact
    for position in [*range(5, 40), *range(len(new_ids) - 100, len(new_ids))]:
        _, found = approximate.top_k(index, new[position], 1 if kind != 'ivfpq' else 50, new, new_ids)
        assert found[0] == position  # the new latent is there, under its row (PQ codes: among more candidates)
    _, found = approximate.top_k(index, old[0], 10, new, new_ids)
    assert 0 not in new_ids[found]  # gone rows are never returned


def test_follow_declines_what_must_be_built_again():
    rng = np.random.default_rng(1)
    ids = np.arange(4000)
    latents = unit(rng.normal(size=(4000, 16)))
    graph = approximate.build(latents, ids, 'hnsw')
    assert not approximate.follow(graph, latents, ids, latents[:3990], ids[:3990])  # faiss cannot remove
    cells = approximate.build(latents, ids, 'ivfsq')
    more = unit(rng.normal(size=(40000, 16)))
    assert not approximate.follow(cells, latents, ids, more, np.arange(40000))  # 10x the rows: other cells
    assert cells.ntotal == 4000  # untouched


def test_an_update_keeps_the_faiss_index_in_step_without_building_it_again(tmp_path, tiny_checkpoint, monkeypatch):
    predictor = predictor_for(tiny_checkpoint)
    files = write_library(tmp_path / 'lib', 12)
    image_index = ruclip.ImageIndex(tmp_path / 'x.index', predictor)
    image_index.update([tmp_path / 'lib'])
    assert image_index.build_approximate() == 'flat'
    assert image_index.approximate_report()['recall_at_10'] == 1.0
    builds = []
    build = approximate.build
    monkeypatch.setattr(approximate, 'build', lambda *args: builds.append(args) or build(*args))
    rgb_image(40, 30, seed=777).save(tmp_path / 'lib' / 'album0' / 'extra.png')
    os.remove(files[3])
    rgb_image(40, 30, seed=778).save(files[4])  # changed in place: same row, new latent
    image_index.update([tmp_path / 'lib'])
    assert builds == [] and image_index.approximate_report()['kind'] == 'flat'
    reopened = ruclip.ImageIndex(tmp_path / 'x.index', predictor)  # from the files written
    for index in (image_index, reopened):
        hits = index.search('кошка', k=20)
        assert [h.path for h in hits] == [h.path for h in index.search('кошка', k=20, approximate_search=False)]
        assert len(hits) == 12 and files[3] not in [h.path for h in hits]
        top = index.search(Path(files[4]), k=1, approximate_search=True)  # by the picture: it is first
        assert top[0].path == files[4]
    assert reopened._approximate is not None and builds == []
    monkeypatch.setattr(approximate, 'IVF_FROM', 14)  # two more images make it a size for IVF
    for seed in (780, 781):
        rgb_image(40, 30, seed=seed).save(tmp_path / 'lib' / 'album1' / f'more{seed}.png')
    image_index.update([tmp_path / 'lib'])
    assert len(builds) == 1 and image_index.approximate_report()['kind'] == 'ivfsq'
    assert len(image_index.search('кошка', k=20)) == 14


def test_a_faiss_index_of_the_old_format_is_built_again(tmp_path, tiny_checkpoint):
    predictor = predictor_for(tiny_checkpoint)
    write_library(tmp_path / 'lib', 6)
    image_index = ruclip.ImageIndex(tmp_path / 'x.index', predictor)
    image_index.update([tmp_path / 'lib'])
    stale = os.path.join(image_index.path + '.cache', 'faiss-1.faiss')  # labelled by position, as before row ids
    faiss.write_index(faiss.IndexFlatIP(image_index.model['embed_dim']), stale)
    rgb_image(40, 30, seed=779).save(tmp_path / 'lib' / 'album0' / 'extra.png')
    image_index.update([tmp_path / 'lib'])
    assert image_index.approximate_report()['rows'] == 7
    assert not os.path.exists(stale)


def test_a_faiss_index_that_misses_too_much_leaves_searches_exact(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    from ruclip.cli import main

    write_library(tmp_path / 'lib', 8)
    monkeypatch.setattr(approximate, 'RECALL_TARGET', 1.01)  # no calibration reaches it
    assert main(['index', str(tmp_path / 'lib'), '--index', str(tmp_path / 'x.index'), '--model',
                 str(tiny_checkpoint), '--backend', 'torch', '--dtype', 'fp32', '--faiss', '-q']) == 0
    assert 'under 1.01, so searches stay exact unless --approximate' in capsys.readouterr().err
    index = ruclip.ImageIndex(tmp_path / 'x.index', predictor_for(tiny_checkpoint, jpeg_draft=True))  # the CLI's
    searched = []
    top_k = approximate.top_k
    monkeypatch.setattr(approximate, 'top_k', lambda *args: searched.append(1) or top_k(*args))
    index.search('кошка', k=3)
    assert searched == []
    index.search('кошка', k=3, approximate_search=True)
    assert searched == [1]
