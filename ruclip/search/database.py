"""The index file: one SQLite database in WAL mode, its schema, version and lock.

Tables: meta (key -> JSON value: format, version, model, generation), images (one row per indexed
file: path as the file system's bytes, size, mtime_ns, blake2b content hash, latent as float32
bytes), roots (the folders and files indexed, which bound what the web page serves); since
version 2 photos and tags (photos.py: capture time, camera, place, tags), which connect() adds
to a version 1 file in place.
Every change runs in one transaction and bumps meta.generation, so a reader can tell whether a
cached copy of the latents is current. Two writers never run at once: `writing` holds an exclusive
lock on PATH.lock (fcntl) for the whole update.
"""
import contextlib
import json
import os
import sqlite3
import time
from typing import Iterator, Optional

FORMAT = 'ruclip-image-index'
VERSION = 2  # 2: photos and tags tables (photos.upgrade)
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (id INTEGER PRIMARY KEY, path BLOB UNIQUE NOT NULL, size INTEGER NOT NULL,
                     mtime_ns INTEGER NOT NULL, hash BLOB, latent BLOB NOT NULL);
CREATE INDEX images_by_hash ON images(hash);
CREATE TABLE roots (path BLOB PRIMARY KEY);
"""


class IndexBusy(RuntimeError):
    """Another process is updating the index."""


def connect(path: str, readonly: bool) -> sqlite3.Connection:
    """A connection to an existing index file (ValueError unless it is one this version reads)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no index at {path}: build one with `ruclip index FOLDER --index {path}`')
    uri = f'file:{_quote(os.path.abspath(path))}?mode={"ro" if readonly else "rw"}'
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
        if not readonly:  # WAL with synchronous=NORMAL: a killed process loses no commit, a power cut the last few
            connection.execute('PRAGMA journal_mode=WAL')
            connection.execute('PRAGMA synchronous=NORMAL')
        rows = dict(connection.execute('SELECT key, value FROM meta'))
    except sqlite3.DatabaseError as error:
        raise ValueError(f'{path} is not a ruclip image index ({error})') from None
    if json.loads(rows.get('format', 'null')) != FORMAT:
        raise ValueError(f'{path} is an SQLite database but not a ruclip image index')
    version = json.loads(rows['version'])
    if version > VERSION:
        raise ValueError(f'index {path} has format version {version}, newer than this ruclip reads ({VERSION}): '
                         f'upgrade ruclip (pip install -U ruclip)')
    if version < VERSION and not readonly:  # in place, in one transaction; read-only, photos.py makes do
        from .photos import upgrade
        upgrade(connection)
    return connection


def create(path: str, model: dict) -> None:
    """A new, empty index file for `model` (an identity.model_identity), written whole or not at all."""
    from .._outputs import replacing

    if os.path.exists(path):
        raise ValueError(f'{path} already exists')
    with replacing(path) as temporary:
        connection = sqlite3.connect(temporary, isolation_level=None)
        try:
            connection.execute('PRAGMA journal_mode=WAL')  # kept in the file
            from .photos import SCHEMA as PHOTO_SCHEMA
            connection.executescript(SCHEMA + PHOTO_SCHEMA)
            connection.executemany('INSERT INTO meta VALUES (?, ?)', [
                (key, json.dumps(value)) for key, value in
                dict(format=FORMAT, version=VERSION, model=model, generation=0).items()])
        finally:
            connection.close()


def meta(connection: sqlite3.Connection, key: str):
    return json.loads(connection.execute('SELECT value FROM meta WHERE key = ?', (key,)).fetchone()[0])


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT that bumps the generation; rolled back on any error."""
    connection.execute('BEGIN IMMEDIATE')
    try:
        yield connection
        connection.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        connection.execute('COMMIT')
    except BaseException:
        if connection.in_transaction:  # SQLite ends a transaction it could not commit (a full disk) itself
            connection.execute('ROLLBACK')
        raise


@contextlib.contextmanager
def writing(path: str, wait: float) -> Iterator[None]:
    """Hold the exclusive lock on PATH.lock, waiting up to `wait` seconds; IndexBusy past that."""
    try:
        import fcntl
    except ImportError:  # not POSIX: SQLite's own BEGIN IMMEDIATE still keeps each batch whole
        yield
        return
    lock_path = path + '.lock'
    try:
        handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise PermissionError(f'cannot update index {path}: cannot create its lock file {lock_path}: '
                              f'{error.strerror}') from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexBusy(f'index {path} is being updated by another process (it holds {lock_path}); '
                                    f'waited {wait:g} s; try again when it is done') from None
                time.sleep(0.05)
        yield
    finally:
        os.close(handle)  # releases the lock


def disk_full(error: sqlite3.Error) -> bool:
    return isinstance(error, sqlite3.OperationalError) and 'full' in str(error)


def writable(path: str) -> Optional[str]:
    """None when the index file and its folder can be written, else why not."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(path, os.W_OK):
        return f'{path} is read-only'
    if not os.access(folder, os.W_OK):
        return f'its folder {folder} is read-only (SQLite writes its journal there)'
    return None


def _quote(path: str) -> str:
    from urllib.parse import quote
    return quote(path)
