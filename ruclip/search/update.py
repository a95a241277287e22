"""Bring an index in step with its folders: reuse what is known, embed the rest, commit in batches.

Order of work, so that a crash at any moment loses at most the batch being embedded: first one
transaction records touched files (same content, new mtime), files whose content the index already
holds (moved, renamed or copied: their latent is copied, not recomputed) and drops files that are
gone; then new and changed files are embedded with Predictor.embed_images and committed
`commit_every` images per transaction. A rerun sees committed files as unchanged and embeds the rest.
"""
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from typing import Callable, List, Tuple

from tqdm.auto import tqdm

from . import database
from .scan import Changes, Found

logger = logging.getLogger('ruclip')
UPSERT = ('INSERT INTO images (path, size, mtime_ns, hash, latent) VALUES (?, ?, ?, ?, ?) ON CONFLICT(path) '
          'DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash, '
          'latent = excluded.latent')


@dataclass
class UpdateReport:
    """What an update did; skipped: (path, reason) for each file or folder that could not be read (a
    folder's rows are kept as they were; all are retried next time)."""
    unchanged: int = 0
    embedded: int = 0
    reused: int = 0  # moved, renamed or copied files whose content the index held
    touched: int = 0
    removed: int = 0
    skipped: List[Tuple[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.embedded or self.reused or self.touched or self.removed)


def apply(connection: sqlite3.Connection, changes: Changes, get_predictor: Callable, commit_every: int,
          index_path: str) -> UpdateReport:
    report = UpdateReport(unchanged=changes.unchanged, touched=len(changes.touched), removed=len(changes.gone),
                          skipped=list(changes.unreadable))
    to_embed = _record_known(connection, changes, report)
    if to_embed:
        _embed(connection, to_embed, get_predictor(), commit_every, report, index_path)
    return report


def _record_known(connection, changes: Changes, report: UpdateReport) -> List[Found]:
    if not (changes.touched or changes.new or changes.gone):
        return []
    to_embed = []
    with database.transaction(connection):
        connection.executemany('UPDATE images SET size = ?, mtime_ns = ? WHERE path = ?',
                               [(item.size, item.mtime_ns, os.fsencode(item.path)) for item in changes.touched])
        for item in changes.new:
            known = None if item.hash is None else connection.execute(
                'SELECT latent FROM images WHERE hash = ? LIMIT 1', (item.hash,)).fetchone()
            if known is None:
                to_embed.append(item)
                continue
            connection.execute(UPSERT, (os.fsencode(item.path), item.size, item.mtime_ns, item.hash, known[0]))
            report.reused += 1
        gone = [(row_id,) for row_id in changes.gone]
        connection.executemany('DELETE FROM images WHERE id = ?', gone)
    return to_embed


def _embed(connection, items: List[Found], predictor, commit_every: int, report: UpdateReport,
           index_path: str) -> None:
    with tqdm(total=len(items), unit='image', desc='indexing', disable=predictor.quiet) as progress:
        for start in range(0, len(items), commit_every):
            batch = items[start:start + commit_every]
            embedded = predictor.embed_images([item.path for item in batch], progress=False)
            failed = [(path, reason) for _, path, reason in embedded.failures]
            for _, reason in failed:
                logger.warning('skipped: %s', reason)
            rows = [(os.fsencode(batch[position].path), batch[position].size, batch[position].mtime_ns,
                     batch[position].hash, latent.tobytes())
                    for position, latent in zip(embedded.kept, embedded.latents.numpy())]
            try:
                with database.transaction(connection):
                    connection.executemany(UPSERT, rows)
            except sqlite3.OperationalError as error:
                if database.disk_full(error):
                    raise OSError(28, f'the disk is full: index {index_path} keeps the {report.embedded} images '
                                      f'committed so far; free some space and rerun to index the other '
                                      f'{len(items) - report.embedded - len(report.skipped)}') from None
                raise
            report.embedded += len(rows)
            report.skipped.extend(failed)
            progress.update(len(batch))


class Writing:
    """The index opened for writing, under its lock: creates the file (for the predictor's model) if needed."""

    def __init__(self, index):
        self.index = index

    def __enter__(self):
        index = self.index
        if index.readonly:
            raise PermissionError(f'index {index.path} was opened read-only (readonly=True); it cannot be updated')
        if os.path.isfile(index.path):
            why = database.writable(index.path)
            if why:
                raise PermissionError(f'cannot update index {index.path}: {why}; search works, updates need '
                                      f'write access')
        self._lock = database.writing(index.path, index.wait)
        self._lock.__enter__()
        try:
            if not os.path.isfile(index.path):
                index.predictor  # noqa: B018 - loads the model, whose identity the new file records
                database.create(index.path, index._identity)
                index._connection = database.connect(index.path, readonly=True)
            elif index._predictor is not None or hasattr(index._source, 'clip_model') or index.check_model:
                index.predictor  # noqa: B018 - another model is refused before anything is written
            self.connection = database.connect(index.path, readonly=False)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self.connection

    def __exit__(self, *exc):
        database.checkpoint(self.connection, self.index.path)
        self.connection.close()
        self._lock.__exit__(*exc)
