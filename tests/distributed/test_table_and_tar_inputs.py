"""Tables of paths and URLs with captions, and webdataset tar shards, as inputs."""
import json

import numpy as np
import pytest

from helpers.images import encoded, rgb_image
from ruclip.distributed import Settings, list_inputs, run_local
from ruclip.distributed.inputs import read_tar

pq = pytest.importorskip('pyarrow.parquet')
pa = pytest.importorskip('pyarrow')
pa_csv = pytest.importorskip('pyarrow.csv')


def read(path):
    return pq.read_table(path).to_pylist()


@pytest.mark.parametrize('fmt', ['csv', 'jsonl', 'parquet'])
def test_a_table_of_paths_and_urls_gives_metadata_captions_and_failures(
        fmt, tmp_path, image_server, image_folder, tiny_checkpoint, shard_predictor):
    rows = [dict(url=f'{image_server}/img/{i}.png', caption=f'картинка {i}', width=30 + i) for i in range(5)]
    rows.insert(2, dict(url=f'{image_server}/slow.png', caption='медленно', width=1))  # past the timeout
    rows.insert(4, dict(url=f'{image_server}/missing.png', caption='нет', width=2))  # 404
    rows.append(dict(url=str(image_folder / '003.jpg'), caption='файл', width=3))  # a path, not a URL
    table = tmp_path / f'table.{fmt}'
    if fmt == 'jsonl':
        table.write_text(''.join(json.dumps(row, ensure_ascii=False) + '\n' for row in rows), encoding='utf-8')
    elif fmt == 'csv':
        pa_csv.write_csv(pa.Table.from_pylist(rows), table)
    else:
        pq.write_table(pa.Table.from_pylist(rows), table)
    inputs = list_inputs([str(table)])
    assert inputs.kind == 'tables' and inputs.image_column == 'url' and inputs.caption_column == 'caption'
    out = tmp_path / 'out'
    report = run_local(inputs, Settings(model=str(tiny_checkpoint), out=str(out), partition_count=2, texts=True,
                                        url_timeout=1.5), predictor=shard_predictor)
    assert (report.rows, report.failed, report.complete) == (6, 2, True)
    for partition in range(2):
        expected = [row for row in rows[partition::2] if row['width'] not in (1, 2)]
        metadata = read(out / 'metadata' / f'metadata_{partition}.parquet')
        assert [(m['image_path'], m['caption'], m['width']) for m in metadata] == \
            [(r['url'], r['caption'], r['width']) for r in expected]
        images = [encoded(rgb_image(30, 20, seed=int(r['url'].split('/')[-1][:-4]))) if 'img/' in r['url']
                  else r['url'] for r in expected]
        np.testing.assert_allclose(np.load(out / 'img_emb' / f'img_emb_{partition}.npy').astype(np.float32),
                                   shard_predictor.get_image_latents(images).numpy(), atol=2e-3, rtol=0)
        np.testing.assert_allclose(np.load(out / 'text_emb' / f'text_emb_{partition}.npy').astype(np.float32),
                                   shard_predictor.get_caption_latents([r['caption'] for r in expected]).numpy(),
                                   atol=2e-3, rtol=0)
    failed = {row['image_path']: row['reason'] for path in (out / 'failed').iterdir() for row in read(path)}
    assert 'timed out' in failed[f'{image_server}/slow.png'].lower()
    assert '404' in failed[f'{image_server}/missing.png']


def test_a_table_without_the_image_column_names_the_columns(tmp_path):
    table = tmp_path / 'table.jsonl'
    table.write_text('{"src": "a.png"}\n')
    with pytest.raises(ValueError, match=r"no column .* its columns are \['src'\].*--image-column"):
        list_inputs([str(table)])
    assert list_inputs([str(table)], image_column='src').rows[0][1] == {'src': 'a.png'}


def write_shard(path, first, count, truncate=False):
    webdataset = pytest.importorskip('webdataset')
    with webdataset.TarWriter(str(path)) as sink:
        for i in range(first, first + count):
            sink.write({'__key__': f'{i:06d}', 'jpg': encoded(rgb_image(20, 30, seed=i), 'JPEG'),
                        'txt': f'подпись {i}', 'json': {'key': f'{i:06d}', 'similarity': i / 10}})
    if truncate:
        data = path.read_bytes()
        path.write_bytes(data[:len(data) * 2 // 3])


def test_tar_shards_partition_by_shard_and_a_truncated_one_keeps_what_it_holds(
        tmp_path, tiny_checkpoint, shard_predictor):
    shards = [tmp_path / f'{n:05d}.tar' for n in range(3)]
    for n, shard in enumerate(shards):
        write_shard(shard, 10 * n, 6, truncate=n == 1)
    samples = list(read_tar(str(shards[1])))
    assert samples[-1].error and 'cannot read tar shard' in samples[-1].error and 0 < len(samples) - 1 < 6
    out = tmp_path / 'out'
    report = run_local(list_inputs([str(s) for s in shards]), Settings(model=str(tiny_checkpoint), out=str(out),
                       partition_count=2), predictor=shard_predictor)
    kept = len(samples) - 1
    assert (report.rows, report.failed) == (12 + kept, 1)
    first = read(out / 'metadata' / 'metadata_0.parquet')  # shards 0 and 2
    assert [row['key'] for row in first] == [f'{i:06d}' for i in [*range(6), *range(20, 26)]]
    assert first[0]['caption'] == 'подпись 0' and first[0]['similarity'] == 0.0 and first[0]['image_path'] == '000000'
    images = [encoded(rgb_image(20, 30, seed=i), 'JPEG') for i in [*range(6), *range(20, 26)]]
    np.testing.assert_allclose(np.load(out / 'img_emb' / 'img_emb_0.npy').astype(np.float32),
                               shard_predictor.get_image_latents(images).numpy(), atol=2e-3, rtol=0)
    assert [row['key'] for row in read(out / 'metadata' / 'metadata_1.parquet')] == \
        [f'{i:06d}' for i in range(10, 10 + kept)]
    assert '00001.tar (truncated or corrupt)' in read(out / 'failed' / 'failed_1.parquet')[0]['reason']
