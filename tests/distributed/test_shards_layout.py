"""The local engine's output: clip-retrieval's layout, read by embedding-reader and faiss as theirs."""
import json
import os

import numpy as np
import pytest

from conftest import N_IMAGES, all_rows, unit_norm
from ruclip import find_images
from ruclip.distributed import Settings, list_inputs, read_shards, run_local, verify_shards
from ruclip.distributed.shards import shard_id

pq = pytest.importorskip('pyarrow.parquet')


@pytest.fixture(scope='module')
def sharded(tmp_path_factory, image_folder, tiny_checkpoint, shard_predictor):
    out = tmp_path_factory.mktemp('out') / 'shards'
    settings = Settings(model=str(tiny_checkpoint), out=str(out), partition_count=3)
    report = run_local(list_inputs([str(image_folder)]), settings, predictor=shard_predictor)
    return out, report


def test_shards_hold_every_image_once_by_index_modulo_n_with_get_image_latents(sharded, image_folder, shard_predictor):
    out, report = sharded
    files = find_images(str(image_folder))
    broken = str(image_folder / 'broken.jpg')
    assert report.rows == N_IMAGES and report.failed == 1 and report.complete
    assert sorted(os.listdir(out)) == ['_SUCCESS', '_done', '_manifest.json', 'failed', 'img_emb', 'metadata']
    assert sorted(os.listdir(out / 'img_emb')) == ['img_emb_0.npy', 'img_emb_1.npy', 'img_emb_2.npy']
    for partition in range(3):
        expected = [path for path in files[partition::3] if path != broken]
        rows = pq.read_table(out / 'metadata' / f'metadata_{partition}.parquet').to_pylist()
        assert [row['image_path'] for row in rows] == expected
        assert rows[0]['key'] == f'{files.index(expected[0]):09d}' and 'caption' not in rows[0]
        latents = np.load(out / 'img_emb' / f'img_emb_{partition}.npy')
        assert latents.dtype == np.float16 and latents.shape == (len(expected), 24) and unit_norm(latents)
        reference = shard_predictor.get_image_latents(expected).numpy()
        np.testing.assert_allclose(latents.astype(np.float32), reference, atol=2e-3, rtol=0)
    failed = pq.read_table(out / 'failed' / f'failed_{files.index(broken) % 3}.parquet').to_pylist()
    assert [row['image_path'] for row in failed] == [broken] and 'not an image file' in failed[0]['reason']
    embedded, failed_paths = all_rows(out)
    assert sorted(embedded + failed_paths) == sorted(files)
    assert json.loads((out / '_SUCCESS').read_text())['rows'] == N_IMAGES
    assert verify_shards(str(out)) == []


def test_shard_ids_are_zero_padded_as_clip_retrieval_pads_them():
    # clip-retrieval's writer: str(i).zfill(int(math.log10(count)) + 1)
    assert [shard_id(0, 1), shard_id(3, 9), shard_id(3, 10), shard_id(42, 99), shard_id(7, 100)] == \
        ['0', '3', '03', '42', '007']


def test_embedding_reader_reads_the_shards_as_clip_retrievals(sharded, shard_predictor):
    embedding_reader = pytest.importorskip('embedding_reader')
    out, _ = sharded
    reader = embedding_reader.EmbeddingReader(str(out / 'img_emb'), file_format='parquet_npy',
                                              embedding_column='embedding', meta_columns=['image_path'],
                                              metadata_folder=str(out / 'metadata'))
    assert reader.count == N_IMAGES and reader.dimension == 24
    latents, paths = read_shards(str(out))
    seen = {}
    for embeddings, metadata in reader(batch_size=16, start=0, end=reader.count, parallel_pieces=1):
        seen.update(zip(metadata['image_path'], embeddings))
    assert sorted(seen) == sorted(paths)
    for path, latent in zip(paths, latents):
        np.testing.assert_array_equal(seen[path], latent)


def test_a_faiss_index_built_from_the_shards_finds_each_image_first(sharded):
    faiss = pytest.importorskip('faiss')
    embedding_reader = pytest.importorskip('embedding_reader')
    out, _ = sharded
    reader = embedding_reader.EmbeddingReader(str(out / 'img_emb'), file_format='npy')
    index = faiss.IndexFlatIP(reader.dimension)
    for embeddings, _ in reader(batch_size=1000, start=0, end=reader.count):
        index.add(embeddings.astype(np.float32))
    latents, _ = read_shards(str(out))
    _, found = index.search(latents, 1)
    assert index.ntotal == N_IMAGES and (found[:, 0] == np.arange(N_IMAGES)).all()


def test_read_shards_refuses_an_unfinished_run(sharded, tmp_path):
    import shutil
    out, _ = sharded
    copy = tmp_path / 'copy'
    shutil.copytree(out, copy)
    (copy / '_SUCCESS').unlink()
    with pytest.raises(ValueError, match='no _SUCCESS'):
        read_shards(str(copy))
    latents, paths = read_shards(str(copy), require_complete=False)
    assert len(paths) == N_IMAGES


@pytest.mark.parametrize('make, message', [
    (lambda folder: [str(folder / 'none')], 'no such image file or folder'),
    (lambda folder: [str(folder)], 'no image files'),
])
def test_empty_or_missing_input_is_refused(tmp_path, make, message):
    (tmp_path / 'empty').mkdir()
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        list_inputs(make(tmp_path / 'empty'))


def test_more_partitions_than_inputs_is_refused_before_anything_is_written(image_folder, tiny_checkpoint, tmp_path):
    inputs = list_inputs([str(image_folder / '002.png'), str(image_folder / '003.jpg')])
    with pytest.raises(ValueError, match='3 partitions for 2 files.*at most 2'):
        run_local(inputs, Settings(model=str(tiny_checkpoint), out=str(tmp_path / 'out'), partition_count=3))
    assert not (tmp_path / 'out').exists()
