"""Where and how results are written.

Paths are checked before any work, so a bad one fails fast; every file is written to a temporary
name in its target folder, flushed to disk and renamed into place, so after any failure (an
exception, a full disk, Ctrl-C, SIGKILL) it is either complete or absent, never half written.
"""
import os
import tempfile
from contextlib import contextmanager
from typing import IO, Iterable, Iterator

PARTIAL = '.partial'  # in the names of temporary files, which a crash may leave behind: never a result


@contextmanager
def replacing(path) -> Iterator[str]:
    """A temporary path beside `path` (same extension) to write the file to; once the block ends
    without error it is synced and renamed to `path`, else removed."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    extension = os.path.splitext(name)[1]
    handle, temporary = tempfile.mkstemp(prefix=f'.{name}.', suffix=PARTIAL + extension, dir=folder)
    os.close(handle)
    try:
        yield temporary
        _fsync(temporary)
        os.replace(temporary, path)
        _fsync(folder)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def atomic_open(path, mode: str = 'wb', **options) -> Iterator[IO]:
    """open() for writing, through replacing(path): the file appears whole, or not at all."""
    with replacing(path) as temporary, open(temporary, mode, **options) as file:
        yield file


def _fsync(path: str) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    except OSError:  # some file systems cannot sync a folder
        pass
    finally:
        os.close(handle)


def check_writable_file(path: str, what: str, inputs: Iterable = ()) -> None:
    """Raise ValueError unless `path` can be created or overwritten as a file and is none of `inputs`
    (paths compared once symlinks are resolved)."""
    if os.path.isdir(path):
        raise ValueError(f'{what}: {path} is a folder, expected a file name')
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'{what}: no such folder: {os.path.dirname(path)}')
    _check_writable_folder(folder, what)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f'{what}: {path} cannot be overwritten (permission denied)')
    target = os.path.realpath(path)
    for source in inputs:
        if os.path.realpath(source) == target:
            raise ValueError(f'{what}: {path} is one of the inputs; choose another file name')


def check_export_folder(out_dir, model, overwrite: bool = False) -> str:
    """`out_dir` as a str once checked, before `model` is loaded; nothing is created, so a failed
    export leaves no folder behind (the exporter creates it when it writes).

    Refused: the checkpoint folder `model` itself (always), a file, a folder that already holds
    files unless `overwrite`, and a place this process cannot write into.
    """
    out_dir = os.fspath(out_dir)
    if (isinstance(model, (str, os.PathLike)) and os.path.isdir(model) and os.path.isdir(out_dir)
            and os.path.samefile(out_dir, model)):
        raise ValueError(f'out_dir {out_dir} is the checkpoint folder being exported; choose another folder')
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f'out_dir {out_dir} is a file, expected a folder')
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise ValueError(f'out_dir {out_dir} is not empty; choose a new or empty folder, or pass overwrite=True '
                         f'(--overwrite) to write over its files')
    existing = os.path.abspath(out_dir)
    while not os.path.isdir(existing):  # the folder, or the nearest one above it that exists
        if os.path.exists(existing):
            raise ValueError(f'out_dir {out_dir} cannot be created: {existing} is a file')
        existing = os.path.dirname(existing)
    _check_writable_folder(existing, 'out_dir')
    return out_dir


def _check_writable_folder(folder: str, what: str) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f'{what}: cannot write into {folder}: {error.strerror}') from None
