"""The index file: one SQLite database in WAL mode, its schema, version and lock.

Tables: meta (key -> JSON value: format, version, model, generation, contents), images (one row per
indexed file: path as the file system's bytes, size, mtime_ns, blake2b content hash, latent as
float32 bytes), roots (the folders and files indexed, which bound what the web page serves); since
version 2 photos and tags (photos.py: capture time, camera, place, tags), which connect() adds to a
version 1 file in place.
Every change runs in one transaction that bumps meta.generation and draws a new random
meta.contents, so a file derived from the latents (the caches in PATH.cache/) records exactly
which contents it was derived from: another index's cache of the same generation, or this index's
of an earlier state, never matches. When a writer closes, its commits are moved from the -wal
side file into the index file (checkpoint), so after any clean exit the index is that one file.
Two writers never run at once: `writing` holds an exclusive lock on PATH.lock (fcntl) for the
whole update.
"""
import contextlib
import json
import logging
import os
import secrets
import sqlite3
import time
from typing import Iterator, Optional

logger = logging.getLogger('ruclip')
FORMAT = 'ruclip-image-index'
VERSION = 2  # 2: photos and tags tables (upgrade)
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (id INTEGER PRIMARY KEY, path BLOB UNIQUE NOT NULL, size INTEGER NOT NULL,
                     mtime_ns INTEGER NOT NULL, hash BLOB, latent BLOB NOT NULL);
CREATE INDEX images_by_hash ON images(hash);
CREATE TABLE roots (path BLOB PRIMARY KEY);
"""
# version 2: photos.py records capture time, camera and place, tags.py the tags
PHOTO_SCHEMA = """
CREATE TABLE IF NOT EXISTS photos (id INTEGER PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                                   taken TEXT NOT NULL, taken_key REAL NOT NULL, taken_source TEXT NOT NULL,
                                   camera TEXT, latitude REAL, longitude REAL, width INTEGER, height INTEGER);
CREATE INDEX IF NOT EXISTS photos_by_taken ON photos(taken_key);
CREATE TABLE IF NOT EXISTS tags (id INTEGER NOT NULL, tag TEXT NOT NULL, score REAL NOT NULL, PRIMARY KEY (id, tag));
CREATE INDEX IF NOT EXISTS tags_by_tag ON tags(tag);
"""


class IndexBusy(RuntimeError):
    """Another process is updating the index."""


def connect(path: str, readonly: bool) -> sqlite3.Connection:
    """A connection to an existing index file (ValueError unless it is one this version reads).

    Read-only, a whole index file (one that closed cleanly: see checkpoint) opens even where SQLite
    cannot create its -shm side file (a read-only folder or medium): it is then opened immutable.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no index at {path}: build one with `ruclip index FOLDER --index {path}`')
    try:
        connection, rows = _open(path, readonly)
    except sqlite3.OperationalError as error:
        if not readonly or writable(path) is None:
            raise ValueError(f'cannot open index {path}: {error}') from None
        _check_whole(path)
        connection, rows = _open(path, readonly, immutable=True)  # nothing can change it: no locks, no -shm
    if json.loads(rows.get('format', 'null')) != FORMAT:
        raise ValueError(f'{path} is an SQLite database but not a ruclip image index')
    version = json.loads(rows['version'])
    if version > VERSION:
        raise ValueError(f'index {path} has format version {version}, newer than this ruclip reads ({VERSION}): '
                         f'use a newer ruclip')
    if version < VERSION and not readonly:  # in place, in one transaction; read-only, photos.py makes do
        upgrade(connection)
    return connection


def _open(path: str, readonly: bool, immutable: bool = False):
    """(connection, the meta table as a dict); sqlite3.OperationalError when SQLite cannot open the file
    (or create the side files it needs)."""
    uri = f'file:{_quote(os.path.abspath(path))}?mode={"ro" if readonly else "rw"}{"&immutable=1" if immutable else ""}'
    connection = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
    try:
        if not readonly:  # WAL with synchronous=NORMAL: a killed process loses no commit, a power cut the last few
            connection.execute('PRAGMA journal_mode=WAL')
            connection.execute('PRAGMA synchronous=NORMAL')
        return connection, dict(connection.execute('SELECT key, value FROM meta'))
    except sqlite3.DatabaseError as error:
        connection.close()
        if isinstance(error, sqlite3.OperationalError) and 'unable to open' in str(error):
            raise  # SQLite could not open the file or create its side files
        raise ValueError(f'{path} is not a ruclip image index ({error})') from None


def _check_whole(path: str) -> None:
    """A ValueError when commits of `path` sit in its -wal file, which an immutable open would not see."""
    wal = path + '-wal'
    if os.path.isfile(wal) and os.path.getsize(wal) > 0:
        raise ValueError(f'index {path} cannot be read here: its folder is read-only and its latest changes are '
                         f'still in {wal} (it was copied while being updated, or its update was killed); open it '
                         f'once where its folder can be written (any `ruclip search`), then copy {path} alone')


def checkpoint(connection: sqlite3.Connection, path: str) -> None:
    """Move every commit from the -wal file into the index file and empty the -wal: the file alone is
    then the whole index (to copy, back up or open on read-only media). Called when a writer closes."""
    try:
        busy, _, _ = connection.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()
    except sqlite3.Error as error:  # a full disk: the commits stay safe in the -wal file
        busy, reason = 1, error
    else:
        reason = 'a reader held it past the timeout'
    if busy:
        logger.warning('index %s: its latest changes are still in %s-wal (%s); the next update moves them',
                       path, path, reason)


def create(path: str, model: dict) -> None:
    """A new, empty index file for `model` (an identity.model_identity), written whole or not at all."""
    from .._outputs import replacing

    if os.path.exists(path):
        raise ValueError(f'{path} already exists')
    with replacing(path) as temporary:
        connection = sqlite3.connect(temporary, isolation_level=None)
        try:
            connection.execute('PRAGMA journal_mode=WAL')  # kept in the file
            connection.executescript(SCHEMA + PHOTO_SCHEMA)
            connection.executemany('INSERT INTO meta VALUES (?, ?)', [
                (key, json.dumps(value)) for key, value in
                dict(format=FORMAT, version=VERSION, model=model, generation=0, contents=new_contents_id()).items()])
        finally:
            connection.close()


def meta(connection: sqlite3.Connection, key: str, default=None):
    row = connection.execute('SELECT value FROM meta WHERE key = ?', (key,)).fetchone()
    return default if row is None else json.loads(row[0])


def new_contents_id() -> str:
    """A random id for the contents after a commit (an index made before there was one has none
    until its first change)."""
    return secrets.token_hex(16)


@contextlib.contextmanager
def immediate(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error: what it writes lands whole or not at all."""
    connection.execute('BEGIN IMMEDIATE')
    try:
        yield connection
        connection.execute('COMMIT')
    except BaseException:
        if connection.in_transaction:  # SQLite ends a transaction it could not commit (a full disk) itself
            connection.execute('ROLLBACK')
        raise


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """immediate(), for a change of the latents: it also bumps the generation and renews the contents id."""
    with immediate(connection):
        yield connection
        connection.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
        connection.execute("INSERT OR REPLACE INTO meta VALUES ('contents', ?)", (json.dumps(new_contents_id()),))


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


def has_tables(connection: sqlite3.Connection) -> bool:
    """Whether the file has this module's tables (format version 2; a version 1 file opened read-only has not)."""
    return connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'photos'").fetchone() \
        is not None


def upgrade(connection: sqlite3.Connection) -> None:
    """Bring an index file of format version 1 to 2: its tables added and its version set in one
    transaction, so that a failure leaves the file as it was (the photos are read at the next
    update). A version 1 file opened read-only is left as it is: has_tables() is then False and
    every photo counts as taken at its recorded mtime."""
    with immediate(connection):
        for statement in PHOTO_SCHEMA.split(';'):
            if statement.strip():
                connection.execute(statement)
        connection.execute("UPDATE meta SET value = '2' WHERE key = 'version'")
