"""ImageIndex: an on-disk index of image latents for search by text, by example image or both."""
import dataclasses
import os
import threading
from dataclasses import dataclass
from typing import Iterable, List, Optional, Union

import numpy as np

from . import approximate, database, exact, importers, matrix, photos, scan, update
from ..identity import ModelIdentity, check_same_model
from .query import as_terms, query_latent


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        path: the image file's path.
        score: its cosine similarity to the query.
        rank: 1 for the best.
        id: its row id in the index (for `ImageIndex.similar`).
    """
    path: str
    score: float
    rank: int
    id: int


class ImageIndex:
    """The images of some folders and their latents, in one SQLite file, searchable by text and image.

    Latents are stored as float32, exactly as the predictor returned them. One ImageIndex may be
    searched from several threads at once (the web page does); updates run one at a time.

    Args:
        path: the index file; created (with the model's identity) by the first update or import.
        predictor (Predictor | Callable[[], Predictor] | None): the Predictor whose model fills and
            queries the index, or a function returning one, called the first time the model is
            needed (so an update that finds nothing new and a search by a stored image never load
            it). Any other model is refused with an error naming both. May be None for an existing
            index that is only searched by stored latents.
        model_name: how to name the model in the index (default: the name ruclip.load was given).
        readonly: open the file read-only; search works, update and import raise PermissionError.
        wait: seconds an update waits for another process's update to finish before IndexBusy.

    Raises:
        ValueError: a file that is not an index, or one of a newer format version.
    """

    def __init__(self, path: Union[str, os.PathLike], predictor=None, *, model_name: Optional[str] = None,
                 readonly: bool = False, wait: float = 10.0):
        self.path = os.path.abspath(os.fspath(path))
        self._source, self._predictor, self._model_name = predictor, None, model_name
        self.readonly, self.wait = readonly, wait
        self.check_model = False  # True: an update loads a predictor given as a function, to check it, even
        # when nothing needs embedding (`ruclip index --model` naming another model than the index's)
        self._connection = database.connect(self.path, readonly=True) if os.path.isfile(self.path) else None
        self._matrix = None  # matrix.Stored
        self._approximate = None  # (what it was derived from, faiss index, its calibration report)
        self._lock = threading.RLock()

    # ---- what it holds ---------------------------------------------------------------------------
    @property
    def model(self) -> Optional[dict]:
        """The identity of the model that filled the index (a ruclip.identity.ModelIdentity's to_dict()),
        None when new."""
        return None if self._connection is None else database.meta(self._connection, 'model')

    def __len__(self) -> int:
        if self._connection is None:
            return 0
        with self._lock:
            return self._connection.execute('SELECT COUNT(*) FROM images').fetchone()[0]

    def files(self) -> List[str]:
        """Every indexed file.

        Returns:
            Their paths, sorted.
        """
        rows = [] if self._connection is None else self._connection.execute('SELECT path FROM images ORDER BY path')
        return [os.fsdecode(path) for path, in rows]

    def roots(self) -> List[str]:
        """The folders and files the index was given (what `ruclip serve` may serve from).

        Returns:
            Their paths.
        """
        rows = [] if self._connection is None else self._connection.execute('SELECT path FROM roots')
        return [os.fsdecode(path) for path, in rows]

    def path_of(self, row_id: int) -> Optional[str]:
        """The path of the indexed image with this id.

        Args:
            row_id: the image's id (a Hit's `id`).

        Returns:
            Its path, or None when the index holds no such id.
        """
        with self._lock:
            row = self._connection.execute('SELECT path FROM images WHERE id = ?', (int(row_id),)).fetchone()
        return None if row is None else os.fsdecode(row[0])

    @property
    def predictor(self):
        """The Predictor, loaded now if it was given as a function, checked against the index's model."""
        if self._predictor is None:
            if self._source is None:
                raise ValueError(f'index {self.path} needs its model for this: give ImageIndex a predictor')
            predictor = self._source() if callable(self._source) and not hasattr(self._source, 'clip_model') \
                else self._source
            identity = predictor.identity
            if self._model_name:
                identity = dataclasses.replace(identity, name=self._model_name)
            if self.model is not None:
                check_same_model(self.model, identity, f'index {self.path}')
            self._predictor, self._identity = predictor, identity.to_dict()
        return self._predictor

    # ---- changing it -----------------------------------------------------------------------------
    def update(self, paths: Iterable[Union[str, os.PathLike]], *, commit_every: int = 256) -> update.UpdateReport:
        """Make the index hold exactly the image files under `paths` as they are now.

        New and changed files are embedded, moved or copied ones reuse their latent, files gone from
        under `paths` are dropped; what the index holds from elsewhere stays. Unreadable files are
        skipped (logged, in the report) and retried next time; a folder that cannot be listed is too,
        and its rows are kept, not dropped. Committed every `commit_every` images, so an interrupted
        update keeps what it committed and a rerun does the rest.

        Args:
            paths: folders (searched recursively as ruclip.find_images does) and files.
            commit_every: images embedded per transaction.

        Returns:
            UpdateReport: counts of unchanged, embedded, reused, touched and removed files, and the
            skipped ones with their reasons.

        Raises:
            PermissionError: a read-only index.
            IndexBusy: another process kept updating it for longer than `wait`.
            ValueError: paths is empty, or a predictor of another model than the index's (both named).
            FileNotFoundError: a path that does not exist.
        """
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else paths
        roots = [os.path.abspath(os.fspath(path)) for path in paths]
        if not roots:
            raise ValueError('paths is empty: give the folders or image files to index')
        found = scan.walk(roots)  # FileNotFoundError for a missing root, before anything is written
        with self._writing() as connection:
            recorded = {}
            for root in roots:
                for row_id, path, size, mtime_ns, digest in connection.execute(
                        'SELECT id, path, size, mtime_ns, hash FROM images WHERE path = ? OR (path > ? AND path < ?)',
                        (os.fsencode(root), os.fsencode(root + os.sep), os.fsencode(root + chr(ord(os.sep) + 1)))):
                    recorded[os.fsdecode(path)] = (row_id, size, mtime_ns, digest)
            changes = scan.compare(found, recorded)
            new_roots = [os.fsencode(root) for root in roots if root not in set(self.roots())]
            if new_roots:
                with database.transaction(connection):
                    connection.executemany('INSERT OR IGNORE INTO roots VALUES (?)', [(root,) for root in new_roots])
            report = update.apply(connection, changes, lambda: self.predictor, commit_every, self.path)
            report.skipped.extend(found.needs_plugin)  # HEIC without pillow-heif: named, retried next time
            photos.record(connection)  # capture times, cameras, places of the new and changed files
        self._refresh_caches()
        return report

    def import_embeddings(self, path: Union[str, os.PathLike], *, trust_model: bool = False) -> int:
        """Take in `ruclip embed`'s output.

        Args:
            path: a .npz file, or a .npy file with its .files.txt (and .model.json) beside it.
            trust_model: take output that records no model (of an earlier ruclip) as the index's
                model's, vouched for by the caller.

        Returns:
            The number of rows added.

        Raises:
            ValueError: the output records another model than the index's (both named), or none
                without trust_model.
            FileNotFoundError: no such file.
            PermissionError: a read-only index.
        """
        path = os.fspath(path)
        self._check_source_model(path, 'ruclip-embed', trust_model)
        return self._import(importers.read_ruclip_embed(path), path)

    def import_clip_retrieval(self, folder: Union[str, os.PathLike], *, trust_model: bool = False) -> int:
        """Take in clip-retrieval's layout (img_emb/*.npy with metadata/*.parquet).

        Args:
            folder: `ruclip embed --out FOLDER`'s shards, whose _manifest.json records the model, or
                clip-retrieval's own output.
            trust_model: take a folder without a manifest (made by clip-retrieval itself): the caller
                vouches that the index's model made its latents.

        Returns:
            The number of rows added.

        Raises:
            ValueError: the folder records another model than the index's (both named), or none
                without trust_model.
            FileNotFoundError: no such folder.
            PermissionError: a read-only index.
            ImportError: pyarrow is not installed (the `search` extra).
        """
        folder = os.fspath(folder)
        self._check_source_model(folder, 'clip-retrieval', trust_model)
        return self._import(importers.read_clip_retrieval(folder), folder)

    def _check_source_model(self, source: str, layout: str, trust_model: bool) -> None:
        """ValueError unless `source` records this index's model (loaded now for a new index), or
        records none and trust_model."""
        if not os.path.exists(source):
            raise FileNotFoundError(f'no such file or folder: {source}')
        recorded, where = importers.recorded_model(source, layout)
        index_model = self.model
        if index_model is None:
            self.predictor  # noqa: B018 - the model a new index will be made for
            index_model = self._identity
        if recorded is not None:
            check_same_model(recorded, index_model, source)
        elif not trust_model:
            raise ValueError(f'{source} does not record which model made its latents (no {where}): it was not '
                             f'written by this ruclip\'s `ruclip embed`. If you know they come from the index\'s '
                             f'model, {ModelIdentity.from_dict(index_model).describe()}, with its preprocessing, '
                             f'take them with --assume-model (trust_model=True); else embed the images again')

    def _import(self, parts, source: str) -> int:
        added = 0
        with self._writing() as connection:
            dim = self.model['embed_dim']
            for latents, files in parts:
                for batch in importers.rows(latents, files, dim, source):
                    with database.transaction(connection):
                        connection.executemany(update.UPSERT, batch)
                    added += len(batch)
                existing = [os.path.abspath(name) for name in files if '://' not in name]
                folders = [os.path.commonpath(existing)] if existing else []
                with database.transaction(connection):
                    connection.executemany('INSERT OR IGNORE INTO roots VALUES (?)',
                                           [(os.fsencode(folder),) for folder in folders])
        self._refresh_caches()
        return added

    def build_approximate(self, kind: Optional[str] = None) -> str:
        """Build, calibrate and save a faiss index of the current contents, unless one of that kind is there.

        An update keeps it in step afterwards.

        Args:
            kind: one of approximate.KINDS ('flat', 'ivf', 'ivfsq', 'hnsw', 'ivfpq'); by default the
                one for the size.

        Returns:
            The kind built (or found).

        Raises:
            ImportError: faiss is not installed (the `faiss` extra).
            ValueError: an unknown kind.
        """
        current = self._faiss_index(build=False)
        if current is not None and kind in (None, approximate.kind_of(current)):
            return approximate.kind_of(current)
        stored = self._latents()
        index = approximate.build(stored.latents, stored.ids, kind)
        report = approximate.calibrate(index, stored.latents, stored.ids, stored.half)
        self._save_approximate(index, report, stored.source)
        return report['kind']

    def approximate_report(self) -> Optional[dict]:
        """What the current faiss index's calibration measured (approximate.calibrate).

        Returns:
            The report (kind, cells searched, recall@10 against exact search...), or None without a
            current faiss index.
        """
        with self._lock:
            return None if self._faiss_index(build=False) is None else dict(self._approximate[2])

    # ---- searching it ----------------------------------------------------------------------------
    def search(self, query, k: int = 10, *, prefix: Optional[str] = None, templates: bool = True,
               approximate_search: Optional[bool] = None, only: Optional[np.ndarray] = None) -> List[Hit]:
        """The k images most similar to `query`, best first (fewer when the index holds fewer).

        Args:
            query (str | os.PathLike | bytes | PIL.Image.Image | Term | list): a text (str), an image
                (path, bytes, PIL image), a query Term, or a list of them or of (value, weight) pairs;
                the weighted sum of their unit latents is searched for.
            k: results wanted.
            prefix: only images under this folder.
            templates: texts through the predictor's templates (get_text_latents); False: as they are.
            only: only the images with these row ids (a filter: photos.ids_taken and tags.ids_tagged
                make them); filtered searches are exact, over the images kept, so the top k is right.
            approximate_search: None: faiss when a faiss index is built for the current contents
                (build_approximate), its calibration reached approximate.RECALL_TARGET and no prefix is
                given, else exact; True: faiss (built now if needed); False: exact.

        Returns:
            The hits, best first.

        Raises:
            ValueError: k not a positive integer, or a query term that cannot be read.
            FileNotFoundError: no index at the path yet.
        """
        terms = as_terms(query)
        return self.search_latent(query_latent(self.predictor, terms, templates), k, prefix=prefix,
                                  approximate_search=approximate_search, only=only)

    def similar(self, row_id: int, k: int = 10, **options) -> List[Hit]:
        """The k images most similar to an indexed image (itself first), without running the model.

        Args:
            row_id: the image's id (a Hit's `id`).
            k: results wanted.
            **options (Any): prefix and approximate_search, as for search.

        Returns:
            The hits, best first.

        Raises:
            KeyError: no image with this id.
        """
        with self._lock:
            row = self._connection.execute('SELECT latent FROM images WHERE id = ?', (int(row_id),)).fetchone()
        if row is None:
            raise KeyError(f'no image with id {row_id} in index {self.path}')
        return self.search_latent(np.frombuffer(row[0], dtype=np.float32), k, **options)

    def search_latent(self, latent: np.ndarray, k: int = 10, *, prefix: Optional[str] = None,
                      approximate_search: Optional[bool] = None, only: Optional[np.ndarray] = None) -> List[Hit]:
        """As search, for a query latent already computed.

        Args:
            latent: `[embed_dim]` array (normalised here).
            k: results wanted.
            prefix: only images under this folder.
            approximate_search: as for search.
            only: as for search.

        Returns:
            The hits, best first.

        Raises:
            ValueError: k not a positive integer, or a latent of another size than the index's.
            FileNotFoundError: no index at the path yet.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f'k (--top-k) must be a positive integer, got {k!r}')
        if self._connection is None:
            raise FileNotFoundError(f'no index at {self.path}: build one with '
                                    f'`ruclip index FOLDER --index {self.path}`')
        latent = np.asarray(latent, dtype=np.float32).reshape(-1)
        if len(latent) != self.model['embed_dim']:
            raise ValueError(f'the query latent has {len(latent)} dimensions, the index {self.model["embed_dim"]}')
        with self._lock:
            stored = self._latents()
            latents, ids, half = stored.latents, stored.ids, stored.half
            rows = None if prefix is None else self._rows_under(prefix, ids)
            if only is not None:
                kept = np.flatnonzero(np.isin(ids, np.asarray(only, dtype=np.int64)))
                rows = kept if rows is None else np.intersect1d(rows, kept)
            faiss_index = None if rows is not None or approximate_search is False else \
                self._faiss_index(build=bool(approximate_search))
            if approximate_search is None and faiss_index is not None and \
                    self._approximate[2].get('recall_at_10', 0) < approximate.RECALL_TARGET:
                faiss_index = None  # it would miss too many: these latents have no structure it can use
            if faiss_index is not None:
                scores, positions = approximate.top_k(faiss_index, latent, k, latents, ids)
            else:
                scores, positions = exact.top_k(latents, latent, k, rows=rows, half=half)
            paths = dict(self._connection.execute(
                f'SELECT id, path FROM images WHERE id IN ({",".join("?" * len(positions))})',
                [int(ids[p]) for p in positions]).fetchall()) if len(positions) else {}
        return [Hit(os.fsdecode(paths[int(ids[p])]), float(s), rank, int(ids[p]))
                for rank, (s, p) in enumerate(zip(scores, positions), 1)]

    # ---- plumbing --------------------------------------------------------------------------------
    def _latents(self) -> matrix.Stored:
        source = self._cache_source()
        if self._matrix is None or self._matrix.source != source:
            self._matrix = matrix.load(self._connection, self.path, self.model['embed_dim'], self.model['fingerprint'])
        return self._matrix

    def _cache_source(self) -> dict:
        """What the caches of the index as it is now must have been derived from (matrix.derived_from)."""
        return matrix.derived_from(self._connection, self.path, self.model['fingerprint'])

    def _rows_under(self, prefix: str, ids: np.ndarray) -> np.ndarray:
        folder = os.path.abspath(prefix).rstrip(os.sep) + os.sep
        selected = np.array([row_id for row_id, in self._connection.execute(
            'SELECT id FROM images WHERE path > ? AND path < ?',
            (os.fsencode(folder), os.fsencode(folder[:-1] + chr(ord(os.sep) + 1))))], dtype=np.int64)
        return np.flatnonzero(np.isin(ids, selected))

    def _faiss_index(self, build: bool):
        source = self._cache_source()
        if self._approximate is not None and self._approximate[0] == source:
            return self._approximate[1]
        saved = approximate.path_for(matrix.cache_folder(self.path), source['generation'])
        loaded = approximate.load(saved, source) if os.path.isfile(saved) else None
        if loaded is not None:
            self._approximate = (source, *loaded[:2])
        elif build:
            self.build_approximate()
        else:
            return None
        return self._approximate[1]

    def _save_approximate(self, index, report: dict, source: dict) -> None:
        approximate.save(index, approximate.path_for(matrix.cache_folder(self.path), source['generation']), report,
                         source)
        self._approximate = (source, index, report)

    def _writing(self):
        return update.Writing(self)

    def _refresh_caches(self):
        """After a change: the latent cache for the new contents, and the faiss index if there was one,
        brought in step (approximate.follow, from the cached latents it was built from) or built again."""
        folder = matrix.cache_folder(self.path)
        saved = approximate.saved(folder)
        if saved is None or saved[0] == self._cache_source()['generation'] and saved[1] is not None:
            self._latents()
            return  # nothing changed since the faiss index was saved, or there is none
        index = before = None
        if saved[1] is not None:
            loaded = (self._approximate[1], self._approximate[2], self._approximate[0]) \
                if self._approximate and self._approximate[0]['generation'] == saved[0] else approximate.load(saved[1])
            if loaded is not None:
                index, report, built_from = loaded
                # mapped now, as checked against what the faiss index records: writing the new cache deletes them
                before = matrix.cached(folder, saved[0], built_from)
        stored = self._latents()
        if before is not None and before.source['model'] == stored.source['model'] and \
                approximate.follow(index, before.latents, before.ids, stored.latents, stored.ids):
            self._save_approximate(index, report, stored.source)  # as calibrated at report['rows'] rows
        else:
            old_rows = len(before.ids) if before is not None else index.ntotal if index is not None else 0
            self.build_approximate(approximate.rebuild_kind(index, old_rows, len(stored.ids)) if index else None)

    def close(self) -> None:
        """Close the database connection; the object is not used afterwards."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
