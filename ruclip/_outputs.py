"""Where and how results are written.

Paths are checked before any work, so a bad one fails fast; every file is written to a temporary
name in its target folder, flushed to disk and renamed into place, so after any failure (an
exception, a full disk, Ctrl-C, SIGKILL) it is either complete or absent, never half written.
"""
import errno
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from typing import IO, Iterable, Iterator, List, Optional

PARTIAL = '.partial'  # in the names of temporary files, which a crash may leave behind: never a result


@contextmanager
def replacing(path) -> Iterator[str]:
    """A temporary path beside `path` (same extension) to write the file to; once the block ends
    without error it is synced and renamed to `path`, else removed."""
    with replacing_together([path]) as (temporary,):
        yield temporary


@contextmanager
def replacing_together(paths) -> Iterator[List[str]]:
    """replacing() for files that belong together (latents and their listing): once the block ends
    without error all are renamed into place; if one rename fails, the files renamed before it are
    put back as they were (the older file, or none), so the set is complete or left unchanged."""
    paths = [os.path.abspath(os.fspath(path)) for path in paths]
    temporaries = []
    try:
        for path in paths:
            temporaries.append(_temporary_beside(path))
        yield list(temporaries)
        for temporary in temporaries:
            _fsync(temporary)
        _rename_all(temporaries, paths)
        temporaries = []
    finally:
        for temporary in temporaries:
            _remove(temporary)


def _temporary_beside(path: str) -> str:
    folder, name = os.path.split(path)
    handle, temporary = tempfile.mkstemp(prefix=f'.{name}.', suffix=PARTIAL + os.path.splitext(name)[1], dir=folder)
    os.close(handle)
    os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would make the result private
    return temporary


def _rename_all(temporaries: List[str], paths: List[str]) -> None:
    """Rename each temporary to its path; on a failure undo the renames done, from hard-linked backups."""
    backups = [_backup(path) if len(paths) > 1 else None for path in paths]
    done = 0
    try:
        for temporary, path in zip(temporaries, paths):
            os.replace(temporary, path)
            done += 1
    except BaseException:
        for path, backup in reversed(list(zip(paths[:done], backups[:done]))):
            if backup:
                os.replace(backup, path)
            else:
                _remove(path)
        raise
    finally:
        for backup in backups:
            if backup:
                _remove(backup)
        for folder in sorted({os.path.dirname(path) for path in paths}):
            _fsync_folder(folder)


def _backup(path: str) -> Optional[str]:
    """A hard link to the file at `path` under a temporary name, or None when there is none."""
    if not os.path.isfile(path):
        return None
    backup = _temporary_beside(path)
    os.unlink(backup)
    os.link(path, backup)
    return backup


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@contextmanager
def atomic_open(path, mode: str = 'wb', **options) -> Iterator[IO]:
    """open() for writing, through replacing(path): the file appears whole, or not at all."""
    with replacing(path) as temporary, open(temporary, mode, **options) as file:
        yield file


def _fsync(path: str) -> None:
    """Flush a file to disk: an error (a full disk, EIO) means the data may not be there, and raises."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _fsync_folder(folder: str) -> None:
    """Flush a folder's entries (the rename) to disk, where the file system can."""
    try:
        _fsync(folder)
    except OSError:  # some file systems cannot sync a folder; the file itself is synced by then
        pass


def check_writable_file(path: str, what: str, inputs: Iterable = (), inside: Iterable = ()) -> None:
    """Raise ValueError unless `path` can be created or overwritten as a file, lies outside any Hugging
    Face cache and passes check_not_input(path, what, inputs, inside)."""
    cache = _hub_cache_repo(path)
    if cache:
        raise ValueError(f'{what}: {path} is inside the Hugging Face cache ({cache}); choose a file outside it')
    if os.path.isdir(path):
        raise ValueError(f'{what}: {path} is a folder, expected a file name')
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'{what}: no such folder: {os.path.dirname(path)}')
    _check_writable_folder(folder, what)
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise ValueError(f'{what}: {path} cannot be overwritten (permission denied)')
    check_not_input(path, what, inputs, inside)


def check_not_input(path, what: str, inputs: Iterable = (), inside: Iterable = ()) -> None:
    """The one check that an output never replaces what a command reads: a ValueError when `path`
    (a file or folder to write) is one of `inputs` (files or folders of any kind: images, tables,
    dataset files, tar shards, result files), the same file however it is named (symlinks and hard
    links), when `path` is a folder that holds one of them, or when `path` is or lies inside one of
    the folders `inside` (a checkpoint folder, which nothing is written into)."""
    path = os.fspath(path)
    for folder in inside:
        check_outside(path, folder, what, role='of the model')
    if not os.path.exists(path):
        return  # every input exists: a new name is none of them
    if os.path.isdir(path):
        for source in inputs:
            if within(source, path):
                raise ValueError(f'{what}: {path} holds {os.fspath(source)}, one of the inputs; choose another folder')
        return
    written = os.stat(path)
    for source in inputs:
        try:
            read = os.stat(source)
        except OSError:
            continue
        if (read.st_dev, read.st_ino) == (written.st_dev, written.st_ino):
            name = '' if os.path.abspath(os.fspath(source)) == os.path.abspath(path) else f' ({os.fspath(source)})'
            raise ValueError(f'{what}: {path} is one of the inputs{name}; choose another file name')


def within(path, folder) -> bool:
    """Whether `path` is `folder` or lies inside it, once symlinks are resolved."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_export_folder(out_dir, model, overwrite: bool = False) -> str:
    """`out_dir` as a str once checked, before `model` is loaded; nothing is created, so a failed
    export leaves no folder behind (see replacing_folder).

    Refused (always): the checkpoint folder `model` or a folder inside it, and any folder inside a
    Hugging Face cache's model folder (models--*/snapshots, blobs...), whether given by its path or
    through symlinks; then a file, a folder that already holds files unless `overwrite`, and a
    place this process cannot write into. Once a model name is resolved to its folder, the exporter
    calls check_outside(out_dir, folder) again.
    """
    out_dir = os.fspath(out_dir)
    if isinstance(model, (str, os.PathLike)) and os.path.isdir(model):
        check_outside(out_dir, model)
    cache = _hub_cache_repo(out_dir)
    if cache:
        raise ValueError(f'out_dir {out_dir} is inside the Hugging Face cache ({cache}); writing there would '
                         f'change cached checkpoints: choose a folder outside the cache')
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f'out_dir {out_dir} is a file, expected a folder')
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise ValueError(f'out_dir {out_dir} is not empty; choose a new or empty folder, or pass overwrite=True '
                         f'(--overwrite) to write the export beside its files (replacing only files an earlier '
                         f'export wrote there)')
    existing = os.path.abspath(out_dir)
    while not os.path.isdir(existing):  # the folder, or the nearest one above it that exists
        if os.path.exists(existing):
            raise ValueError(f'out_dir {out_dir} cannot be created: {existing} is a file')
        existing = os.path.dirname(existing)
    _check_writable_folder(existing, 'out_dir')
    return out_dir


def check_outside(out_dir, folder, what: str = 'out_dir', role: str = 'being exported') -> None:
    """A ValueError if out_dir is the checkpoint `folder` or inside it (real paths compared)."""
    if os.path.realpath(out_dir) == os.path.realpath(folder):
        raise ValueError(f'{what} {out_dir} is the checkpoint folder {role}; choose another folder')
    if within(out_dir, folder):
        raise ValueError(f'{what} {out_dir} is inside the checkpoint folder {role} ({folder}); '
                         f'choose a place outside it')


def _hub_cache_repo(path: str) -> Optional[str]:
    """The Hugging Face cache folder (models--owner--name, holding snapshots/ or blobs/) that path
    (or, once symlinks are resolved, its real path) lies in, or None."""
    for candidate in {os.path.abspath(path), os.path.realpath(path)}:
        folder = candidate
        while True:
            name = os.path.basename(folder)
            if (name.startswith(('models--', 'datasets--', 'spaces--'))
                    and any(os.path.isdir(os.path.join(folder, sub)) for sub in ('snapshots', 'blobs'))):
                return folder
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
    return None


EXPORT_RECORD = '.ruclip-export.json'  # in an export folder: the files ruclip wrote there, which it may replace


@contextmanager
def replacing_folder(out_dir, record: bool = False) -> Iterator[str]:
    """A new temporary folder beside `out_dir` to write an export into. Once the block ends without
    error its files are synced and take their places: the folder is renamed to `out_dir` when that
    is new or empty, else each file replaces its namesake in `out_dir` by a rename (a symlink there
    is replaced, never written through). On any error the temporary folder is removed, with the
    folders above `out_dir` that were created for it.

    record: keep in `out_dir` a list of the files ruclip wrote there (EXPORT_RECORD), and replace no
    file that is not on it: an export over a folder holding a namesake of one of its files that
    ruclip did not write raises ValueError naming it, before anything in `out_dir` changes.
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    parent = os.path.dirname(out_dir)
    created = _make_folders(parent)
    temporary = tempfile.mkdtemp(prefix=f'.{os.path.basename(out_dir)}.', suffix=PARTIAL, dir=parent)
    os.chmod(temporary, 0o777 & ~_umask())  # mkdtemp's 0700 would make the export private
    try:
        yield temporary
        if record:
            _record_export(temporary, out_dir)
        for path in _files(temporary):
            _fsync(path)
        if os.path.isdir(out_dir) and not os.listdir(out_dir):
            os.rmdir(out_dir)
        if not os.path.exists(out_dir):
            os.rename(temporary, out_dir)
        else:
            _move_into(temporary, out_dir)
            shutil.rmtree(temporary)
        _fsync_folder(parent)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        for folder in reversed(created):
            try:
                os.rmdir(folder)
            except OSError:
                break
        raise


def _record_export(temporary: str, out_dir: str) -> None:
    """Write EXPORT_RECORD into `temporary`: its files and those an earlier export recorded in
    `out_dir`; a ValueError if a file of `temporary` would replace one in `out_dir` not recorded there."""
    import json

    written = sorted(os.path.relpath(path, temporary) for path in _files(temporary))
    earlier = []
    if os.path.isfile(os.path.join(out_dir, EXPORT_RECORD)):
        with open(os.path.join(out_dir, EXPORT_RECORD), encoding='utf-8') as file:
            earlier = json.load(file).get('files', [])
    theirs = [name for name in written if os.path.lexists(os.path.join(out_dir, name)) and name not in earlier]
    if theirs:
        raise ValueError(f'out_dir {out_dir} holds {", ".join(theirs)}, which ruclip did not write there (no earlier '
                         f'export recorded it in {EXPORT_RECORD}): nothing was changed; choose a new or empty folder')
    with open(os.path.join(temporary, EXPORT_RECORD), 'w', encoding='utf-8') as file:
        json.dump(dict(files=sorted(set(written) | set(earlier))), file, indent=1)


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (os.umask sets it to read it)."""
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _make_folders(folder: str) -> List[str]:
    """os.makedirs(folder), returning the folders it created, outermost first."""
    missing = []
    while not os.path.isdir(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for path in reversed(missing):
        os.mkdir(path)
    return list(reversed(missing))


def _files(folder: str) -> List[str]:
    return [os.path.join(root, name) for root, _, names in os.walk(folder) for name in names]


def _move_into(source: str, target: str) -> None:
    """Every file under `source` to its place under `target` (folders made as needed), all or none:
    if a rename fails or is interrupted (Ctrl-C), those done are undone and the files they replaced
    put back (_rename_all), so `target` never holds half of one export and half of another."""
    pairs = [(path, os.path.join(target, os.path.relpath(path, source))) for path in sorted(_files(source))]
    for _, destination in pairs:
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        if os.path.isdir(destination) and not os.path.islink(destination):
            shutil.rmtree(destination)
    _rename_all([path for path, _ in pairs], [destination for _, destination in pairs])


@contextmanager
def reporting_full_disk(paths: Iterable, needed: Optional[int] = None) -> Iterator[None]:
    """Around the writing of `paths` (through replacing or atomic_open, so nothing is left of them): an
    error that says the disk or quota is full (ENOSPC, EDQUOT, or numpy's short write 'N requested and
    M written', which carries no errno) becomes OSError(ENOSPC) naming the files, the bytes they need
    (`needed`, when known) and the bytes free in their folder."""
    try:
        yield
    except OSError as error:
        short_write = re.fullmatch(r'\d+ requested and \d+ written', str(error))
        if error.errno not in (errno.ENOSPC, errno.EDQUOT) and not short_write:
            raise
        paths = [os.fspath(path) for path in paths]
        folder = os.path.dirname(os.path.abspath(paths[0]))
        try:
            free = f', {_size(shutil.disk_usage(folder).free)} free in {folder}'
        except OSError:
            free = ''
        together = f' (with {", ".join(paths[1:])})' if len(paths) > 1 else ''
        need = f' needs about {_size(needed)}' if needed is not None else ' could not be written'
        cause = os.strerror(errno.EDQUOT if error.errno == errno.EDQUOT else errno.ENOSPC)
        raise OSError(errno.ENOSPC, f'the disk is full ({cause}): {paths[0]}{together}{need}{free}; nothing was '
                                    f'written: free some space, or choose another disk, and rerun') from None


def _size(count: int) -> str:
    for unit in ('bytes', 'KiB', 'MiB', 'GiB'):
        if count < 1024 or unit == 'GiB':
            return f'{count} {unit}' if unit == 'bytes' else f'{count:.1f} {unit}'
        count /= 1024
    return f'{count} bytes'


def _check_writable_folder(folder: str, what: str) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f'{what}: cannot write into {folder}: {error.strerror}') from None
