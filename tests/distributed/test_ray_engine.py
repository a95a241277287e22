"""The Ray engine on a small local cluster (2 CPUs, a 100 MB object store): the same shards as the
local engine, through the command line too, and a model actor killed mid-partition is retried."""
import os
import sys

import numpy as np
import pytest

from conftest import N_IMAGES, all_rows, shard_files
from ruclip.cli import main
from ruclip.distributed import Settings, list_inputs, run_local, run_ray

ray = pytest.importorskip('ray')
pq = pytest.importorskip('pyarrow.parquet')
from ruclip.distributed import ray_engine  # noqa: E402 - needs ray

pytestmark = [pytest.mark.filterwarnings('ignore::DeprecationWarning'), pytest.mark.slow]  # a Ray cluster starts


@pytest.fixture(scope='module', autouse=True)
def local_ray():
    ray_engine.init_ray(num_cpus=2, object_store_memory=100 * 2 ** 20, include_dashboard=False,
                        log_to_driver=False)
    yield
    ray.shutdown()


def assert_same_shards(ours, theirs):
    """Same files, same rows in the same order, latents equal to float16 rounding."""
    mine, other = shard_files(ours), shard_files(theirs)
    assert sorted(mine) == sorted(other)
    for name in mine:
        if name.endswith('.npy'):
            a, b = np.load(os.path.join(ours, name)), np.load(os.path.join(theirs, name))
            assert a.dtype == b.dtype == np.float16 and a.shape == b.shape
            np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), atol=2e-3, rtol=0)
        else:
            assert pq.read_table(os.path.join(ours, name)).equals(pq.read_table(os.path.join(theirs, name)))


def test_the_ray_command_writes_the_shards_the_local_engine_writes(capsys, image_folder, tiny_checkpoint, tmp_path):
    base = ['embed', str(image_folder), '--model', str(tiny_checkpoint), '--partitions', '3', '-q', '--device', 'cpu']
    assert main(base + ['--out', str(tmp_path / 'local')]) == 1
    ray_options = ['--engine', 'ray', '--actors', '2', '--cpus-per-actor', '0.75']
    assert main(base + ['--out', str(tmp_path / 'ray')] + ray_options) == 1
    assert f'({N_IMAGES} rows embedded, 1 failed)' in capsys.readouterr().out.splitlines()[-1]
    assert_same_shards(tmp_path / 'ray', tmp_path / 'local')
    assert (tmp_path / 'ray' / '_SUCCESS').read_text() == (tmp_path / 'local' / '_SUCCESS').read_text()


class DiesOnce(ray_engine.Embedder):
    """An actor that kills its own process (as the OOM killer would) in the middle of its first batch
    of the run, once: the file `marker` records that it did."""

    def __init__(self, settings, with_captions, marker=None):
        super().__init__(settings, with_captions)
        self.marker = marker

    def __call__(self, batch):
        if not os.path.exists(self.marker):
            open(self.marker, 'w').close()
            os.kill(os.getpid(), 9)
        return super().__call__(batch)


def test_a_killed_actor_is_retried_and_no_row_is_duplicated(tmp_path, tiny_checkpoint, shard_predictor):
    webdataset = pytest.importorskip('webdataset')
    from helpers.images import encoded, rgb_image

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    shards = [str(tmp_path / f'{n:05d}.tar') for n in range(4)]
    for n, shard in enumerate(shards):
        with webdataset.TarWriter(shard) as sink:
            for i in range(10 * n, 10 * n + 10):
                sink.write({'__key__': f'{i:06d}', 'png': encoded(rgb_image(20, 20, seed=i)), 'txt': f'фото {i}'})
    inputs = list_inputs(shards)
    options = dict(model=str(tiny_checkpoint), partition_count=2, texts=True, device='cpu')
    run_local(inputs, Settings(out=str(tmp_path / 'local'), **options), predictor=shard_predictor)
    marker = str(tmp_path / 'died')

    class Dies(DiesOnce):
        def __init__(self, settings, with_captions):
            super().__init__(settings, with_captions, marker)

    report = run_ray(inputs, Settings(out=str(tmp_path / 'ray'), **options), actors=1, embedder=Dies)
    assert os.path.exists(marker) and report.complete and (report.rows, report.failed) == (40, 0)
    assert_same_shards(tmp_path / 'ray', tmp_path / 'local')
    embedded, failed = all_rows(tmp_path / 'ray')
    assert sorted(embedded) == [f'{i:06d}' for i in range(40)] and not failed
