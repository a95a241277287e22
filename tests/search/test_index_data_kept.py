"""Nothing an index holds is lost: an unreadable folder keeps its rows, the index is one whole file
after every clean exit (no rows left in SQLite's -wal file), and that file opens on read-only media."""
import contextlib
import os
import shutil
import sqlite3
import subprocess

import pytest

import ruclip
from helpers.library import predictor_for, write_library
from ruclip.cli import main
from ruclip.search import scan


TORCH_FP32 = ['--backend', 'torch', '--dtype', 'fp32']  # what the predictor fixture runs


@pytest.fixture(scope='module')
def predictor(tiny_checkpoint):
    return predictor_for(tiny_checkpoint)


def unreadable(monkeypatch, folder):
    """os.scandir as the scanner calls it, failing for `folder` as for a folder without read permission
    (the tests run as root, who reads everything)."""
    scandir = os.scandir

    def refusing(path):
        if os.path.abspath(path) == os.path.abspath(folder):
            raise PermissionError(13, 'Permission denied', os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(scan.os, 'scandir', refusing)


def test_an_unreadable_subfolder_keeps_its_rows_and_is_named(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    files = write_library(tmp_path / 'lib', 9)
    arguments = ['index', str(tmp_path / 'lib'), '--index', str(tmp_path / 'x.index'), '--model',
                 str(tiny_checkpoint), '-q', *TORCH_FP32]
    assert main(arguments) == 0
    capsys.readouterr()
    unreadable(monkeypatch, tmp_path / 'lib' / 'album1')
    assert main(arguments) == 1
    captured = capsys.readouterr()
    assert str(tmp_path / 'lib' / 'album1') in captured.err and 'Permission denied' in captured.err
    assert '0 removed' in captured.out and '1 folder that could not be read' in captured.err
    assert ruclip.ImageIndex(tmp_path / 'x.index').files() == files  # album1's rows are still there
    monkeypatch.undo()
    assert main(arguments) == 0
    assert '0 removed' in capsys.readouterr().out


def test_an_unreadable_subfolder_on_the_first_build_is_named_and_counted(tmp_path, tiny_checkpoint, predictor,
                                                                         monkeypatch, capsys):
    files = write_library(tmp_path / 'lib', 9)
    unreadable(monkeypatch, tmp_path / 'lib' / 'album2')
    arguments = ['index', str(tmp_path / 'lib'), '--index', str(tmp_path / 'x.index'), '--model',
                 str(tiny_checkpoint), '-q', *TORCH_FP32]
    assert main(arguments) == 1
    captured = capsys.readouterr()
    assert str(tmp_path / 'lib' / 'album2') in captured.err
    assert 'skipped 1 folder that could not be read' in captured.err and '1 skipped' in captured.out
    report = ruclip.ImageIndex(tmp_path / 'y.index', predictor).update([tmp_path / 'lib'])
    assert [path for path, _ in report.skipped] == [str(tmp_path / 'lib' / 'album2')]
    assert ruclip.ImageIndex(tmp_path / 'x.index').files() == [f for f in files if '/album2/' not in f]


def index_once(tmp_path, tiny_checkpoint, name='x.index'):
    write_library(tmp_path / 'lib', 6)
    path = tmp_path / name
    assert main(['index', str(tmp_path / 'lib'), '--index', str(path), '--model', str(tiny_checkpoint), '-q', *TORCH_FP32]) == 0
    return path


def test_the_index_file_alone_holds_every_row_after_a_clean_exit(tmp_path, tiny_checkpoint, capsys):
    path = index_once(tmp_path, tiny_checkpoint)
    assert not os.path.exists(f'{path}-wal') or os.path.getsize(f'{path}-wal') == 0
    (tmp_path / 'copy').mkdir()
    shutil.copyfile(path, tmp_path / 'copy' / 'x.index')  # a backup of "the one index file"
    capsys.readouterr()
    assert main(['search', 'кошка', '--index', str(tmp_path / 'copy' / 'x.index'), '-k', '10', '-f', '-q']) == 0
    assert len(capsys.readouterr().out.split('\n')) == 7


@contextlib.contextmanager
def read_only_media(folder, *sources):
    """`folder` holding copies of `sources`, all read-only: by permissions for an ordinary user; for root
    (who writes through permissions) a read-only tmpfs, skipped where root may not mount one."""
    folder.mkdir()
    if os.geteuid() != 0:
        for source in sources:
            shutil.copyfile(source, folder / source.name)
            os.chmod(folder / source.name, 0o444)
        os.chmod(folder, 0o555)
        try:
            yield folder
        finally:
            os.chmod(folder, 0o755)
        return
    if subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', str(folder)], capture_output=True).returncode != 0:
        pytest.skip('root writes through permissions, and this one cannot mount a read-only tmpfs')
    try:
        for source in sources:
            shutil.copyfile(source, folder / source.name)
        subprocess.run(['mount', '-o', 'remount,ro', str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(['umount', '-l', str(folder)], check=True)


def test_a_read_only_folder_and_file_are_searched(tmp_path, tiny_checkpoint, capsys):
    path = index_once(tmp_path, tiny_checkpoint)
    with read_only_media(tmp_path / 'media', path) as media:
        capsys.readouterr()
        assert main(['search', 'кошка', '--index', str(media / 'x.index'), '-k', '10', '-f', '-q']) == 0
        assert len(capsys.readouterr().out.split('\n')) == 7
        with ruclip.ImageIndex(media / 'x.index') as index:
            assert len(index) == 6 and index.similar(1, k=3)[0].id == 1
        assert os.listdir(media) == ['x.index']


def test_commits_left_in_the_wal_on_read_only_media_are_named(tmp_path, predictor):
    write_library(tmp_path / 'lib', 3)
    index = ruclip.ImageIndex(tmp_path / 'x.index', predictor)
    index.update([tmp_path / 'lib'])
    index.close()
    writer = sqlite3.connect(tmp_path / 'x.index', isolation_level=None)  # still open: its commit is in the -wal
    writer.execute('PRAGMA wal_autocheckpoint=0')
    writer.execute('DELETE FROM images')
    assert os.path.getsize(tmp_path / 'x.index-wal') > 0
    try:
        with read_only_media(tmp_path / 'media', tmp_path / 'x.index', tmp_path / 'x.index-wal') as media:
            with pytest.raises(ValueError, match='latest changes are still in .*x.index-wal'):
                ruclip.ImageIndex(media / 'x.index')
    finally:
        writer.close()
