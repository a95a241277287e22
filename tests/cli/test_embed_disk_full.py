"""`ruclip embed --out FILE` on a full disk: says so (the file, the bytes it needs), leaves no partial file."""
import errno

import numpy as np
import numpy.lib.format
import pytest

from helpers.library import write_library
from ruclip.cli import main


def short_write(fid, array, *args, **kwargs):
    """What numpy's tofile raises when the disk fills mid-write: no errno, only the counts."""
    fid.write(b'\x93NUMPY' + b'\0' * 100)
    raise OSError(f'{array.nbytes} requested and 992 written')


def no_space(fid, array, *args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device')


@pytest.mark.parametrize('suffix', ['npy', 'npz'])
@pytest.mark.parametrize('failure', [short_write, no_space])
def test_a_full_disk_is_named_and_leaves_nothing(tmp_path, tiny_checkpoint, capsys, monkeypatch, suffix, failure):
    write_library(tmp_path / 'lib', 4)
    (tmp_path / 'out').mkdir()
    monkeypatch.setattr(np.lib.format, 'write_array', failure)
    code = main(['embed', str(tmp_path / 'lib'), '--out', str(tmp_path / 'out' / f'x.{suffix}'), '--model',
                 str(tiny_checkpoint), '--backend', 'torch', '-q'])
    captured = capsys.readouterr()
    assert code == 3 and captured.out == ''
    assert f'the disk is full (No space left on device): {tmp_path / "out" / f"x.{suffix}"}' in captured.err
    assert 'needs about' in captured.err and 'free in' in captured.err and 'requested' not in captured.err
    assert list((tmp_path / 'out').iterdir()) == []
