"""Fault injection: a full disk, SIGKILL and Ctrl-C during a command, unreadable paths, an output that is
an input, an output inside the Hugging Face cache, a closed pipe. After each, every output is complete or
absent, no input and no cached checkpoint has changed, and the exit code says what happened.

Tests run as root here, where chmod 000 does not stop a read: unreadable paths are made by patching
os.scandir and open to raise PermissionError, as the kernel would for another user.
"""
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ruclip
import ruclip._outputs
from helpers.cli import run

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO))  # this checkout's ruclip in child processes
LABELS = ['кошка', 'собака']


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """Five small images, one in a subfolder."""
    folder = tmp_path_factory.mktemp('photos')
    rng = np.random.default_rng(0)
    (folder / 'more').mkdir()
    for name in ('a.png', 'b.png', 'c.png', 'd.png', 'more/e.png'):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / name)
    return folder


@pytest.fixture(scope='module')
def many_photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp('many')
    rng = np.random.default_rng(1)
    for i in range(60):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f'{i:03}.png')
    return folder


def snapshot(folder: Path) -> dict:
    """Every file under folder (symlinks followed) -> its bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob('*')) if path.is_file()}


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# ---- a full disk ---------------------------------------------------------------------------------

class FillingFile(io.FileIO):
    """A file on a disk that fills up after `room` bytes."""
    room = 200

    def write(self, data):
        if self.tell() + len(data) > self.room:
            taken = max(0, self.room - self.tell())
            super().write(bytes(data)[:taken])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def filling_open(path, mode='r', *args, **kwargs):
    if 'w' in mode and 'b' in mode:
        return FillingFile(path, 'wb')
    return open(path, mode, *args, **kwargs)


@pytest.mark.parametrize('fault', ['write', 'fsync', 'rename'])
@pytest.mark.parametrize('existing', [False, True], ids=['new', 'over-an-old-one'])
def test_a_full_disk_leaves_the_embed_output_absent_or_as_it_was(capsys, monkeypatch, tmp_path, photos,
                                                                  tiny_checkpoint, fault, existing):
    out = tmp_path / 'latents.npz'
    if existing:
        out.write_bytes(b'an older result')
    if fault == 'write':
        monkeypatch.setattr(ruclip._outputs, 'open', filling_open, raising=False)
    else:
        monkeypatch.setattr(ruclip._outputs.os, {'fsync': 'fsync', 'rename': 'replace'}[fault], enospc)
    code, stdout, err = run(capsys, 'embed', photos, '--out', out, '--model', tiny_checkpoint, '-q')
    assert code == 3 and 'No space left on device' in err and stdout == ''
    assert sorted(p.name for p in tmp_path.iterdir()) == (['latents.npz'] if existing else [])
    if existing:
        assert out.read_bytes() == b'an older result'


def test_a_full_disk_leaves_neither_half_of_an_npy_pair(capsys, monkeypatch, tmp_path, photos, tiny_checkpoint):
    real_replace, calls = os.replace, []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            enospc()
        real_replace(src, dst)
    monkeypatch.setattr(ruclip._outputs.os, 'replace', second_fails)
    code, _, _ = run(capsys, 'embed', photos, '--out', tmp_path / 'x.npy', '--model', tiny_checkpoint, '-q')
    assert code == 3 and list(tmp_path.iterdir()) == []


def test_a_full_disk_during_an_export_leaves_no_folder_and_no_half_export(capsys, monkeypatch, tmp_path,
                                                                            tiny_checkpoint):
    transformers = pytest.importorskip('transformers')
    monkeypatch.setattr(transformers.CLIPProcessor, 'save_pretrained', enospc)  # after the model's files
    code, stdout, err = run(capsys, 'export-hf', '--model', tiny_checkpoint, '--out', tmp_path / 'new' / 'hf', '-q')
    assert code == 3 and 'No space left on device' in err and stdout == ''
    assert list(tmp_path.iterdir()) == []  # neither the folder, nor its parent made for it, nor a temporary one

    old = tmp_path / 'old'
    old.mkdir()
    (old / 'config.json').write_text('{"mine": true}')
    code, _, _ = run(capsys, 'export-hf', '--model', tiny_checkpoint, '--out', old, '--overwrite', '-q')
    assert code == 3 and snapshot(old) == {'config.json': b'{"mine": true}'}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['old']


def test_an_export_over_a_folder_replaces_only_files_an_export_wrote(capsys, tmp_path, tiny_checkpoint):
    pytest.importorskip('transformers')
    out = tmp_path / 'hf'
    out.mkdir()
    (out / 'config.json').write_text('{"mine": true}')  # the user's own file, named as one of the export's
    (out / 'notes.txt').write_text('mine')
    code, stdout, err = run(capsys, 'export-hf', '--model', tiny_checkpoint, '--out', out, '--overwrite', '-q')
    assert code == 2 and stdout == '' and 'holds config.json, which ruclip did not write there' in err
    assert snapshot(out) == {'config.json': b'{"mine": true}', 'notes.txt': b'mine'}
    (out / 'config.json').unlink()
    for _ in range(2):  # a new export, then one over it
        code, stdout, _ = run(capsys, 'export-hf', '--model', tiny_checkpoint, '--out', out, '--overwrite', '-q')
        written = stdout.splitlines()
        assert code == 0 and str(out / 'config.json') in written and str(out / 'notes.txt') not in written
        assert json.loads((out / 'config.json').read_text())['model_type'] == 'clip'
        assert (out / 'notes.txt').read_text() == 'mine'
        assert sorted(written) == written and all(Path(path).is_file() for path in written)


# ---- SIGKILL and Ctrl-C --------------------------------------------------------------------------

PAUSING_RUCLIP = textwrap.dedent('''
    """`ruclip ARGS`, pausing (PAUSE=write: with the output written to its temporary file, before it is
    renamed; PAUSE=embed: after the 10th batch) to say PAUSED on stderr and wait for a signal."""
    import os, sys, time
    import ruclip._outputs, ruclip.predictor
    from ruclip.cli import main

    def pause():
        sys.stderr.write('PAUSED\\n')
        sys.stderr.flush()
        time.sleep(120)

    if os.environ['PAUSE'] == 'write':
        real_fsync = ruclip._outputs._fsync
        def fsync(path):
            name = os.path.basename(path)  # the output's temporary file, not a cache's (OpenVINO's digest memo)
            if ruclip._outputs.PARTIAL in name and name.startswith('.latents.'):
                pause()
            real_fsync(path)
        ruclip._outputs._fsync = fsync
    else:
        real_encode, batches = ruclip.predictor.Predictor._encode_image, []
        def encode(self, pixel_values):
            batches.append(len(pixel_values))
            if len(batches) == 10:
                pause()
            return real_encode(self, pixel_values)
        ruclip.predictor.Predictor._encode_image = encode
    sys.exit(main(sys.argv[1:]))
''')


def interrupted_embed(tmp_path, images, out, pause, sig):
    script = tmp_path / 'pausing_ruclip.py'
    script.write_text(PAUSING_RUCLIP)
    batches = ['--batch-size', '4'] if pause == 'embed' else []  # 'write': one batch, no waiting for ten
    process = subprocess.Popen([sys.executable, str(script), 'embed', str(images), '--out', str(out), '--model',
                                str(images.parent / 'checkpoint'), '-q', *batches],
                               cwd=REPO, env=dict(ENV, PAUSE=pause), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    for line in process.stderr:
        lines.append(line.decode())
        if line == b'PAUSED\n':
            break
    else:
        process.wait(timeout=60)
        pytest.fail(f'the command ended before its pause, exit code {process.returncode}: {"".join(lines)}')
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    return process.returncode, err.decode()


@pytest.fixture
def work(tmp_path, many_photos, tiny_checkpoint):
    """tmp_path/images (60 tiny images) and tmp_path/checkpoint, the output folder tmp_path/out."""
    shutil.copytree(many_photos, tmp_path / 'images')
    shutil.copytree(tiny_checkpoint, tmp_path / 'checkpoint')
    (tmp_path / 'out').mkdir()
    return tmp_path


@pytest.mark.parametrize('pause', ['embed', 'write'])
def test_sigkill_leaves_no_result_only_a_temporary_file_named_as_such(work, pause):
    out = work / 'out' / 'latents.npz'
    code, _ = interrupted_embed(work, work / 'images', out, pause, signal.SIGKILL)
    assert code == -signal.SIGKILL
    left = [path.name for path in (work / 'out').iterdir()]
    assert 'latents.npz' not in left
    assert all(ruclip._outputs.PARTIAL in name and name.startswith('.latents.npz.') for name in left), left
    assert len(left) == (1 if pause == 'write' else 0)


@pytest.mark.parametrize('pause', ['embed', 'write'])
def test_ctrl_c_exits_130_and_leaves_nothing(work, pause):
    out = work / 'out' / 'latents.npz'
    code, err = interrupted_embed(work, work / 'images', out, pause, signal.SIGINT)
    assert code == 130 and 'ruclip: interrupted' in err
    assert list((work / 'out').iterdir()) == []


def test_an_uninterrupted_run_of_the_same_command_is_complete(work, capsys):
    out = work / 'out' / 'latents.npz'
    code, _, _ = run(capsys, 'embed', work / 'images', '--out', out, '--model', work / 'checkpoint', '-q')
    with np.load(out) as saved:
        assert code == 0 and saved["latents"].shape == (60, 24) and len(saved["files"]) == 60


# ---- unreadable paths ----------------------------------------------------------------------------

@pytest.fixture
def unreadable_subfolder(monkeypatch, photos):
    """photos/more cannot be listed, as for a user without read permission on it."""
    real_scandir, blocked = os.scandir, str(photos / 'more')

    def scandir(path='.'):
        if os.fspath(path) == blocked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)
    monkeypatch.setattr(os, 'scandir', scandir)
    return blocked


def test_an_unreadable_folder_is_counted_named_and_exits_1(capsys, tmp_path, photos, tiny_checkpoint,
                                                            unreadable_subfolder):
    out = tmp_path / 'x.npz'
    code, stdout, err = run(capsys, 'embed', photos, '--out', out, '--model', tiny_checkpoint, '-q')
    assert code == 1 and stdout.startswith('wrote 4 image latents')
    assert f'ruclip: skipped: cannot read folder {unreadable_subfolder}: Permission denied' in err
    assert 'ruclip: skipped 1 folder that could not be read' in err
    code, stdout, err = run(capsys, 'classify', photos, '--labels', *LABELS, '--model', tiny_checkpoint, '-q',
                            '--json')
    result = json.loads(stdout)
    assert code == 1 and len(result['results']) == 4
    assert result['skipped'] == [dict(file=unreadable_subfolder,
                                      reason=f'cannot read folder {unreadable_subfolder}: Permission denied')]


def test_an_unreadable_folder_is_in_find_images_result_and_logged(photos, unreadable_subfolder, caplog):
    files = ruclip.find_images(photos)
    assert len(files) == 4 and files.unreadable == [
        (unreadable_subfolder, f'cannot read folder {unreadable_subfolder}: Permission denied')]
    assert f'cannot read folder {unreadable_subfolder}' in caplog.text


def test_an_unreadable_file_and_an_unreadable_folder_are_counted_apart(capsys, monkeypatch, tmp_path, photos,
                                                                       tiny_checkpoint, unreadable_subfolder):
    blocked = str(photos / 'b.png')

    def guarded_open(path, *args, **kwargs):
        if os.fspath(path) == blocked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), blocked)
        return open(path, *args, **kwargs)
    monkeypatch.setattr(ruclip.image, 'open', guarded_open, raising=False)
    code, stdout, err = run(capsys, 'embed', photos, '--out', tmp_path / 'x.npz', '--model', tiny_checkpoint, '-q')
    assert code == 1 and stdout.startswith('wrote 3 image latents')
    assert f'cannot read image {blocked}: Permission denied' in err
    assert 'ruclip: skipped 1 of 4 image files and 1 folder that could not be read' in err


# ---- outputs that are inputs, or inside a checkpoint or the cache ------------------------------------

def test_an_output_that_is_an_input_is_refused_and_the_input_kept(capsys, tmp_path, photos, tiny_checkpoint):
    image = tmp_path / 'photo.npz'  # an image whose name ends in .npz
    image.write_bytes((photos / 'a.png').read_bytes())
    link = tmp_path / 'link.npz'
    link.symlink_to(image)
    listing_image = tmp_path / 'x.files.txt'
    listing_image.write_bytes((photos / 'a.png').read_bytes())
    for images, out in ((image, image), (image, link), (listing_image, tmp_path / 'x.npy')):
        code, stdout, err = run(capsys, 'embed', images, '--out', out, '--model', tiny_checkpoint, '-q')
        assert code == 2 and 'is one of the inputs' in err and stdout == ''
    assert image.read_bytes() == listing_image.read_bytes() == (photos / 'a.png').read_bytes()
    assert not (tmp_path / 'x.npy').exists()


@pytest.mark.parametrize('command', ['export-hf', 'export-onnx'])
def test_an_export_into_the_cache_is_refused_by_name_or_folder(capsys, tmp_path, hub_cache, command):
    pytest.importorskip({'export-hf': 'transformers', 'export-onnx': 'onnxscript'}[command])  # checked first
    repo = hub_cache / 'models--ai-forever--ruclip-vit-base-patch32-224'
    snapshot_folder = next((repo / 'snapshots').iterdir())
    before = snapshot(repo)
    link = tmp_path / 'looks-elsewhere'
    link.symlink_to(snapshot_folder)
    for model in ('ruclip-vit-base-patch32-224', str(snapshot_folder)):
        for out in (snapshot_folder, link, snapshot_folder / 'sub', repo / 'blobs', repo):
            code, stdout, err = run(capsys, command, '--model', model, '--cache-dir', hub_cache, '--out', out,
                                    '--overwrite', '-q')
            assert code == 2 and stdout == '', (model, out)
            assert 'inside the Hugging Face cache' in err or 'checkpoint folder' in err, (model, out, err)
    assert snapshot(repo) == before and all(path.is_symlink() for path in snapshot_folder.iterdir())


def test_an_embed_output_inside_the_cache_is_refused(capsys, hub_cache, photos):
    snapshot_folder = next((hub_cache / 'models--ai-forever--ruclip-vit-base-patch32-224' / 'snapshots').iterdir())
    code, _, err = run(capsys, 'embed', photos, '--out', snapshot_folder / 'latents.npz', '--model',
                       'ruclip-vit-base-patch32-224', '--cache-dir', hub_cache, '-q')
    assert code == 2 and 'inside the Hugging Face cache' in err
    assert not (snapshot_folder / 'latents.npz').exists()


def test_a_listing_keeps_file_names_that_are_not_utf8(capsys, tmp_path, photos, tiny_checkpoint):
    folder = tmp_path / 'cp1251'
    folder.mkdir()
    name = os.fsencode(folder) + b'/' + 'кот.png'.encode('cp1251')
    with open(name, 'wb') as file:
        file.write((photos / 'a.png').read_bytes())
    code, _, err = run(capsys, 'embed', folder, '--out', tmp_path / 'x.npy', '--model', tiny_checkpoint, '-q')
    assert code == 0, err
    assert (tmp_path / 'x.files.txt').read_bytes() == name + b'\n'
    assert np.load(tmp_path / 'x.npy').shape == (1, 24)


# ---- stdout --------------------------------------------------------------------------------------

def test_json_cut_by_head_exits_141(tmp_path, photos, tiny_checkpoint):
    """`ruclip rank --json | head -c 100`, JSON far larger than a pipe's buffer: the writer sees the pipe close."""
    captions = tmp_path / 'captions.txt'
    captions.write_text('\n'.join(f'подпись номер {i}' for i in range(400)), encoding='utf-8')
    command = (f'{sys.executable} -m ruclip rank --images {photos} --texts {captions} --top-k 400 --model '
               f'{tiny_checkpoint} -q --json | head -c 100 > {tmp_path / "head.txt"}; '
               f'echo "${{PIPESTATUS[0]}}"')
    result = subprocess.run(['bash', '-c', command], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == '141', result.stderr
    assert result.stderr == ''
    assert (tmp_path / 'head.txt').read_bytes().startswith(b'{\n  "model"')


def test_every_write_of_json_is_checked(monkeypatch):
    """A binary stdout that takes a few bytes at a time gets them all; one that takes none is a closed pipe."""
    from ruclip.cli._common import print_json

    class Trickle(io.RawIOBase):
        def __init__(self, take):
            self.taken, self.take = bytearray(), take

        def writable(self):
            return True

        def write(self, data):
            piece = bytes(data)[:self.take]
            self.taken += piece
            return len(piece)

    trickle = Trickle(7)
    monkeypatch.setattr(sys, 'stdout', io.TextIOWrapper(trickle, encoding='utf-8'))
    value = {'files': [f'фото {i}.jpg' for i in range(100)]}
    print_json(value)
    assert json.loads(trickle.taken.decode('utf-8')) == value
    monkeypatch.setattr(sys, 'stdout', io.TextIOWrapper(Trickle(0), encoding='utf-8'))
    with pytest.raises(BrokenPipeError):
        print_json(value)


@pytest.mark.parametrize('argv', [['--help'], ['--version']])
def test_help_and_version_do_not_import_torch(argv):
    script = (f'import sys\nfrom ruclip.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit as done:\n'
              f'    assert done.code == 0, done.code\nprint("torch" in sys.modules, "numpy" in sys.modules)')
    result = subprocess.run([sys.executable, '-c', script], cwd=REPO, env=ENV, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == 'False False'


def test_outputs_get_the_permissions_of_any_new_file(capsys, tmp_path, photos, tiny_checkpoint):
    """Written through a temporary file, a result is still readable as the umask allows (mkstemp's are 0600)."""
    mask = os.umask(0o022)
    try:
        code, _, _ = run(capsys, 'embed', photos, '--out', tmp_path / 'x.npz', '--model', tiny_checkpoint, '-q')
        with ruclip._outputs.replacing_folder(tmp_path / 'export') as folder:
            Path(folder, 'config.json').write_text('{}')
    finally:
        os.umask(mask)
    assert code == 0
    assert (tmp_path / 'x.npz').stat().st_mode & 0o777 == 0o644
    assert (tmp_path / 'export').stat().st_mode & 0o777 == 0o755
