"""Resume, refusal to mix runs, a run killed by SIGKILL, a full disk, and the embed command."""
import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import N_IMAGES, all_rows, shard_files
from ruclip import find_images
from ruclip.cli import main
from ruclip.distributed import Settings, list_inputs, run_local
from ruclip.distributed import partition as partition_module

pytest.importorskip('pyarrow')


def settings(tiny_checkpoint, out, **options):
    return Settings(**{'model': str(tiny_checkpoint), 'out': str(out), 'partition_count': 4, **options})


def test_a_rerun_skips_the_partitions_done_and_redoes_the_rest(image_folder, tiny_checkpoint, shard_predictor,
                                                               tmp_path, monkeypatch):
    inputs, out = list_inputs([str(image_folder)]), tmp_path / 'out'
    run_local(inputs, settings(tiny_checkpoint, out), only=[0, 2], predictor=shard_predictor)
    assert not (out / '_SUCCESS').exists()
    done_files = shard_files(out)
    calls = []
    real = partition_module.embed_partition
    monkeypatch.setattr('ruclip.distributed.local.embed_partition', lambda i, *a: calls.append(i) or real(i, *a))
    report = run_local(inputs, settings(tiny_checkpoint, out), predictor=shard_predictor)
    assert calls == [1, 3] and report.partitions_skipped == [0, 2] and report.complete
    assert all(shard_files(out)[name] == data for name, data in done_files.items())
    embedded, failed = all_rows(out)
    assert sorted(embedded + failed) == sorted(find_images(str(image_folder)))


@pytest.mark.parametrize('change, field', [
    (dict(dtype='float16'), 'model_identity'),
    (dict(partition_count=5), 'partition_count'),
    ('other model', 'model_identity'),
    ('other input', 'input'),
])
def test_a_folder_of_another_run_is_refused_unless_overwrite(change, field, image_folder, tiny_checkpoint,
                                                             checkpoint_factory, shard_predictor, tmp_path):
    inputs, out = list_inputs([str(image_folder)]), tmp_path / 'out'
    run_local(inputs, settings(tiny_checkpoint, out), predictor=shard_predictor)
    before = shard_files(out)
    options, other_inputs = {}, inputs
    if change == 'other model':
        options = dict(model=str(checkpoint_factory(seed=1)))
    elif change == 'other input':
        other_inputs = list_inputs(find_images(str(image_folder))[:-3])
    else:
        options = change
    with pytest.raises(ValueError, match=f'holds shards of another run.*{field}.*--overwrite'):
        run_local(other_inputs, settings(tiny_checkpoint, out, **options))
    assert shard_files(out) == before
    same_model = change not in ('other model', dict(dtype='float16'))
    report = run_local(other_inputs, settings(tiny_checkpoint, out, **options), overwrite=True,
                       predictor=shard_predictor if same_model else None)
    assert report.complete and report.partitions_skipped == []


def users_files(out):
    """A folder of the user's own: notes, and folders named as the shard layout's folders are."""
    for name in ('notes.txt', 'metadata/trip.csv', 'failed/todo.txt', 'img_emb/mine.npy', '_done/list.txt'):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(f'my {name}')
    return {name: f'my {name}' for name in ('notes.txt', 'metadata/trip.csv', 'failed/todo.txt', 'img_emb/mine.npy',
                                            '_done/list.txt')}


def test_a_non_empty_folder_without_a_manifest_is_refused_even_with_overwrite(image_folder, tiny_checkpoint,
                                                                              tmp_path, capsys):
    out = tmp_path / 'out'
    mine = users_files(out)
    for overwrite in (False, True):
        with pytest.raises(ValueError, match='not empty and has no _manifest.json') as error:
            run_local(list_inputs([str(image_folder)]), settings(tiny_checkpoint, out), overwrite=overwrite)
        assert 'pass --overwrite' not in str(error.value)
    assert main(['embed', str(image_folder), '--out', str(out), '--model', str(tiny_checkpoint), '--overwrite',
                 '--partitions', '2', '-q', '--backend', 'torch']) == 2
    assert 'pass --overwrite' not in capsys.readouterr().err
    assert {os.path.relpath(os.path.join(root, name), out): open(os.path.join(root, name)).read()
            for root, _, names in os.walk(out) for name in names} == mine


def test_overwrite_deletes_only_the_files_a_run_wrote(image_folder, tiny_checkpoint, shard_predictor, tmp_path):
    inputs, out = list_inputs([str(image_folder)]), tmp_path / 'out'
    run_local(inputs, settings(tiny_checkpoint, out), predictor=shard_predictor)
    mine = users_files(out)  # added to a folder of shards afterwards
    (out / 'img_emb' / '.img_emb_7.npy.x1.partial.npy').write_bytes(b'left by a killed run')
    report = run_local(inputs, settings(tiny_checkpoint, out, partition_count=2), overwrite=True,
                       predictor=shard_predictor)
    assert report.complete
    assert not (out / 'img_emb' / '.img_emb_7.npy.x1.partial.npy').exists()
    assert sorted(os.listdir(out / 'img_emb')) == ['img_emb_0.npy', 'img_emb_1.npy', 'mine.npy']
    assert all((out / name).read_text() == text for name, text in mine.items())


def test_a_full_disk_leaves_no_partial_file_and_a_rerun_finishes(image_folder, tiny_checkpoint, shard_predictor,
                                                                 tmp_path, monkeypatch):
    inputs, out = list_inputs([str(image_folder)]), tmp_path / 'out'
    real_save, saved = np.save, []

    def save(path, array):
        if len(saved) == 2:
            with open(path, 'wb') as file:
                file.write(b'\x93NUMPY half')
            raise OSError(errno.ENOSPC, 'No space left on device')
        saved.append(path)
        real_save(path, array)

    monkeypatch.setattr('ruclip.distributed.shards.np.save', save)
    with pytest.raises(OSError, match='No space left'):
        run_local(inputs, settings(tiny_checkpoint, out), predictor=shard_predictor)
    left = [name for _, _, names in os.walk(out) for name in names]
    assert not [name for name in left if 'partial' in name]
    assert sorted(os.listdir(out / '_done')) == ['done_0.json', 'done_1.json'] and not (out / '_SUCCESS').exists()
    monkeypatch.setattr('ruclip.distributed.shards.np.save', real_save)
    report = run_local(inputs, settings(tiny_checkpoint, out), predictor=shard_predictor)
    assert report.partitions_skipped == [0, 1] and report.complete


def test_a_run_killed_by_sigkill_and_rerun_has_every_row_exactly_once(tmp_path, tiny_checkpoint, image_folder):
    # 4 copies of the images: enough work that the kill lands mid-run
    for copy in range(4):
        (tmp_path / 'in' / str(copy)).mkdir(parents=True)
        for path in find_images(str(image_folder)):
            os.link(path, tmp_path / 'in' / str(copy) / os.path.basename(path))
    command = [sys.executable, '-m', 'ruclip', 'embed', str(tmp_path / 'in'), '--out', str(tmp_path / 'out'),
               '--partitions', '8', '--model', str(tiny_checkpoint), '--batch-size', '4', '-q', '--device', 'cpu']
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60

    def markers():  # not the temporary file a marker is written to before its rename
        folder = tmp_path / 'out' / '_done'
        return [name for name in os.listdir(folder) if name.startswith('done_')] if folder.is_dir() else []

    while not markers():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / 'out' / '_SUCCESS').exists()
    first_done = len(markers())
    assert first_done < 8
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 1, rerun.stderr  # the broken copies are reported
    assert f'{first_done} partitions were already done' in rerun.stdout
    embedded, failed = all_rows(tmp_path / 'out')
    assert sorted(embedded + failed) == sorted(find_images(str(tmp_path / 'in')))
    assert len(embedded) == 4 * N_IMAGES and len(failed) == 4


def test_the_embed_command_writes_shards_partition_by_partition(capsys, image_folder, tiny_checkpoint, tmp_path):
    out = tmp_path / 'shards'
    base = ['embed', str(image_folder), '--out', str(out), '--model', str(tiny_checkpoint), '-q']
    assert main(base + ['--partition', '1/2']) == 0  # broken.jpg is the 21st of the 41 files: partition 0
    assert 'wrote 1 partitions (20 rows embedded, 0 failed)' in capsys.readouterr().out
    assert not (out / '_SUCCESS').exists()
    assert main(base + ['--partition', '0/2']) == 1
    printed, errors = capsys.readouterr()
    assert 'wrote 1 partitions (20 rows embedded, 1 failed)' in printed and 'all partitions done' in printed
    assert 'broken.jpg' in errors
    assert main(base + ['--partitions', '2']) == 0
    assert '2 partitions were already done' in capsys.readouterr().out
    assert main(base + ['--partitions', '3']) == 2
    assert 'holds shards of another run' in capsys.readouterr().err


def test_engine_ray_without_ray_names_the_extra(capsys, monkeypatch, image_folder, tiny_checkpoint, tmp_path):
    monkeypatch.setitem(sys.modules, 'ray', None)
    code = main(['embed', str(image_folder), '--out', str(tmp_path / 'out'), '--engine', 'ray',
                 '--model', str(tiny_checkpoint), '-q'])
    assert code == 3 and "pip install 'ruclip[ray]'" in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('argv, message', [
    (['--out', 'out', '--partition', '3/3'], 'expected I/N with 0 <= I < N'),
    (['--out', 'out', '--partition', '1/2', '--partitions', '3'], 'disagree'),
    (['--out', 'x.npz', '--texts'], '--texts is for sharded output'),
    (['--out', 'out.csv'], '--out must end in .npy or .npz'),
])
def test_bad_shard_options_exit_2(capsys, argv, message, image_folder, tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(['embed', str(image_folder), '--model', str(tiny_checkpoint)] + argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2 and message in capsys.readouterr().err
