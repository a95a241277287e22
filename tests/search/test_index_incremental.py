"""ImageIndex: ranking equals brute force over the model's latents; incremental updates equal a fresh build."""
import os
import shutil

import numpy as np
import pytest
import torch

import ruclip
from helpers.images import rgb_image
from helpers.library import index_state, predictor_for, write_library
from ruclip.search import exact

SCORE_TOLERANCE = 1e-5  # stored float32 latents, scores from numpy vs torch matrix products


@pytest.fixture(scope='module')
def predictor(tiny_checkpoint):
    return predictor_for(tiny_checkpoint)


def test_ranking_equals_brute_force_over_predictor_latents(tmp_path, predictor):
    files = write_library(tmp_path / 'lib', 60)
    index = ruclip.ImageIndex(tmp_path / 'lib.index', predictor)
    index.update([tmp_path / 'lib'])
    image_latents = predictor.get_image_latents(files)  # what a user would compute by hand
    for query in ['кошка спит на диване', 'закат над морем']:
        text = predictor.get_text_latents([query])[0]
        scores = image_latents @ text
        order = torch.argsort(-scores, stable=True)
        hits = index.search(query, k=len(files))
        assert [hit.path for hit in hits] == [files[i] for i in order.tolist()]
        np.testing.assert_allclose([hit.score for hit in hits], scores[order].numpy(), atol=SCORE_TOLERANCE)
        assert [hit.rank for hit in hits] == list(range(1, len(files) + 1))
    top = index.search('кошка', k=5)
    assert [hit.path for hit in top] == [hit.path for hit in index.search('кошка', k=60)][:5]


@pytest.mark.parametrize('chunk_bytes', [1, 200, 4096, 1 << 30])
def test_chunked_top_k_equals_full_sort_with_ties(chunk_bytes):
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(1000, 8)).astype(np.float32)
    latents[500:520] = latents[3]  # ties straddling chunk edges
    query = latents[3].copy()
    full = latents @ query
    expected = np.lexsort((np.arange(1000), -full))[:37]
    scores, positions = exact.top_k(latents, query, 37, chunk_bytes=chunk_bytes)
    assert positions.tolist() == expected.tolist()
    np.testing.assert_allclose(scores, full[expected], rtol=1e-6)
    rows = np.arange(0, 1000, 3)
    _, positions = exact.top_k(latents, query, 10, rows=rows, chunk_bytes=chunk_bytes)
    assert positions.tolist() == rows[np.lexsort((rows, -full[rows]))][:10].tolist()


def test_incremental_update_equals_fresh_build(tmp_path, predictor):
    library = tmp_path / 'lib'
    files = write_library(library, 40)
    index = ruclip.ImageIndex(tmp_path / 'a.index', predictor)
    first = index.update([library])
    assert (first.embedded, first.unchanged) == (40, 0)
    # add, modify, delete, move, copy, touch
    rgb_image(40, 30, seed=900).save(library / 'album0' / 'new.png')
    rgb_image(40, 30, seed=901).save(files[1])  # same name, other picture
    os.remove(files[2])
    os.makedirs(library / 'moved')
    shutil.move(files[3], library / 'moved' / 'renamed.jpg')
    shutil.copy(files[4], library / 'album1' / 'copy.jpg')
    os.utime(files[5], ns=(1, 10 ** 18))
    report = index.update([library])
    assert (report.embedded, report.reused, report.touched, report.removed, report.unchanged) == (2, 2, 1, 2, 36)
    fresh = ruclip.ImageIndex(tmp_path / 'b.index', predictor)
    fresh.update([library])
    incremental, rebuilt = index_state(index), index_state(fresh)
    assert sorted(incremental) == sorted(rebuilt) == sorted(ruclip.find_images(library))
    for path, (size, mtime_ns, digest, latent) in rebuilt.items():
        assert incremental[path][:3] == (size, mtime_ns, digest), path
        np.testing.assert_allclose(np.frombuffer(incremental[path][3], np.float32), np.frombuffer(latent, np.float32),
                                   atol=1e-6, err_msg=path)
    hits, fresh_hits = index.search('кошка', k=41), fresh.search('кошка', k=41)
    assert [hit.path for hit in hits] == [hit.path for hit in fresh_hits]


def test_unchanged_folder_never_loads_the_model(tmp_path, predictor):
    write_library(tmp_path / 'lib', 12)
    ruclip.ImageIndex(tmp_path / 'x.index', predictor).update([tmp_path / 'lib'])

    def no_model():
        raise AssertionError('the model was loaded for an unchanged folder')

    again = ruclip.ImageIndex(tmp_path / 'x.index', no_model).update([tmp_path / 'lib'])
    assert (again.unchanged, again.changed) == (12, False)


def test_files_outside_the_updated_folders_are_kept(tmp_path, predictor):
    write_library(tmp_path / 'one', 5)
    write_library(tmp_path / 'two', 4, start_seed=50)
    index = ruclip.ImageIndex(tmp_path / 'x.index', predictor)
    index.update([tmp_path / 'one', tmp_path / 'two'])
    shutil.rmtree(tmp_path / 'two' / 'album0')
    report = index.update([tmp_path / 'two'])
    assert report.removed == 2 and len(index) == 7
    assert len(index.search('кошка', k=10, prefix=str(tmp_path / 'one'))) == 5


def test_import_ruclip_embed_output_and_clip_retrieval_layout(tmp_path, predictor, tiny_checkpoint, monkeypatch):
    from ruclip.cli import main

    files = write_library(tmp_path / 'lib', 10)
    monkeypatch.chdir(tmp_path)
    torch_fp32 = ['--backend', 'torch', '--dtype', 'fp32']  # the predictor's, whose results are compared
    assert main(['embed', 'lib', '--out', 'lib.npz', '--model', str(tiny_checkpoint), '-q', *torch_fp32]) == 0
    assert main(['embed', 'lib', '--out', 'lib.npy', '--model', str(tiny_checkpoint), '-q', *torch_fp32]) == 0
    built = ruclip.ImageIndex(tmp_path / 'built.index', predictor)
    built.update(['lib'])
    expected = [hit.path for hit in built.search('кошка', k=10)]
    for source in ('lib.npz', 'lib.npy'):
        index = ruclip.ImageIndex(tmp_path / f'{source}.index', predictor)
        assert index.import_embeddings(source) == 10
        assert [hit.path for hit in index.search('кошка', k=10)] == expected
        report = index.update(['lib'])  # recorded sizes and mtimes: nothing to embed
        assert (report.unchanged, report.embedded) == (10, 0)
    assert main(['index', '--from-embeddings', 'lib.npz', '--index', 'cli.index', '--model', str(tiny_checkpoint),
                 '-q', *torch_fp32]) == 0
    assert [hit.path for hit in ruclip.ImageIndex(tmp_path / 'cli.index', predictor).search('кошка', k=10)] == expected
    pyarrow = pytest.importorskip('pyarrow')
    import pyarrow.parquet

    latents = predictor.get_image_latents(files).numpy().astype(np.float16)  # clip-retrieval's default
    (tmp_path / 'cr' / 'img_emb').mkdir(parents=True)
    (tmp_path / 'cr' / 'metadata').mkdir()
    for part, rows in enumerate([slice(0, 6), slice(6, 10)]):
        np.save(tmp_path / 'cr' / 'img_emb' / f'img_emb_{part}.npy', latents[rows])
        pyarrow.parquet.write_table(pyarrow.table({'image_path': files[rows], 'caption': ['x'] * len(files[rows])}),
                                    tmp_path / 'cr' / 'metadata' / f'metadata_{part}.parquet')
    index = ruclip.ImageIndex(tmp_path / 'cr.index', predictor)
    assert index.import_clip_retrieval(tmp_path / 'cr', trust_model=True) == 10  # clip-retrieval's: no identity
    assert sorted(index.files()) == files
    stored = {path: np.frombuffer(row[3], np.float32) for path, row in index_state(index).items()}
    for path, latent in zip(files, latents.astype(np.float32)):
        np.testing.assert_allclose(stored[path], latent / np.linalg.norm(latent), atol=1e-6)
    assert len(index.search(files[7], k=3)) == 3
    with pytest.raises(ValueError, match=r'do not fit this index'):
        np.save(tmp_path / 'wide.npy', np.ones((2, 5), np.float32))
        (tmp_path / 'wide.files.txt').write_text('a\nb\n')
        index.import_embeddings(tmp_path / 'wide.npy', trust_model=True)
