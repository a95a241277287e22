"""Near-duplicate photos of an index: copies, re-saves, resizes, bursts, grouped from the stored latents.

Two photos are linked when the cosine of their latents is >= the threshold, or when their files
have the same content hash (exact copies link whatever the threshold); a group is a connected set
of links (single linkage: a burst of ten frames is one group even when its first and last frames
are further apart). Finding the links compares every pair: n^2 / 2 dot products, in chunks of
CHUNK_ROWS rows (about 1 s per 20,000 photos of 512 dimensions on one core).

The threshold, unless given, is measured for the index's model on its own photos, once, and stored
in the index (duplicate_calibration.py says how and by which rule).

The photo to keep in each group: the one with the most pixels, then the oldest (capture time,
photos.py), then the largest file, then the first path.
"""
import os
from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from .duplicate_calibration import duplicate_threshold

CHUNK_ROWS = 4096


@dataclass(frozen=True)
class Photo:
    id: int
    path: str
    size: int  # bytes
    pixels: int  # width x height, 0 when unknown
    taken: str
    taken_key: float
    keep: bool = False


@dataclass(frozen=True)
class Group:
    """Photos that are near-identical, the one to keep first; exact: all have one content hash."""
    photos: List[Photo]
    exact: bool

    @property
    def keep(self) -> Photo:
        return self.photos[0]


def linked_pairs(latents: np.ndarray, threshold: float, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """[m, 2] positions (i < j) of the rows of latents [n, dim] whose dot product is >= threshold."""
    latents = np.asarray(latents, dtype=np.float32)
    pairs = []
    for start in range(0, len(latents), chunk_rows):
        for column_start in range(start, len(latents), chunk_rows):  # [chunk_rows, chunk_rows] floats at a time
            block = latents[start:start + chunk_rows] @ latents[column_start:column_start + chunk_rows].T
            rows, columns = np.nonzero(block >= threshold)
            rows, columns = rows + start, columns + column_start
            later = columns > rows  # each pair once, never a row with itself
            pairs.append(np.stack([rows[later], columns[later]], axis=1))
    return np.concatenate(pairs) if pairs else np.empty((0, 2), np.int64)


def components(n: int, pairs: np.ndarray) -> List[List[int]]:
    """The connected sets of more than one of 0..n-1 linked by pairs, each sorted, by their first."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        a, b = root(int(i)), root(int(j))
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: Dict[int, List[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted((members for members in groups.values() if len(members) > 1), key=lambda members: members[0])


def find_duplicates(index, threshold: Optional[float] = None) -> List[Group]:
    """The groups of near-identical photos of an ImageIndex, largest group first (then by path).

    threshold: the cosine at and above which photos group; None: the index's measured one
        (duplicate_threshold(index).value: the first time, the index's model is loaded to measure it).
    """
    from .photos import infos

    if threshold is None:
        threshold = duplicate_threshold(index).value
    if not -1 <= threshold <= 1:
        raise ValueError(f'the duplicate threshold is a cosine in [-1, 1], got {threshold}')
    if index._connection is None:
        return []
    with index._lock:
        stored = index._latents()
        ids = np.asarray(stored.ids)
        pairs = [linked_pairs(stored.latents, threshold)]
        rows = index._connection.execute('SELECT id, path, size, hash FROM images').fetchall()
    position = {int(row_id): p for p, row_id in enumerate(ids)}
    by_hash: Dict[bytes, List[int]] = {}
    for row_id, _, _, digest in rows:
        if digest is not None and row_id in position:
            by_hash.setdefault(digest, []).append(position[row_id])
    pairs += [np.array([(members[0], other) for other in members[1:]], dtype=np.int64).reshape(-1, 2)
              for members in by_hash.values() if len(members) > 1]
    groups = components(len(ids), np.concatenate(pairs))
    if not groups:
        return []
    details = {int(row_id): (os.fsdecode(path), size, digest) for row_id, path, size, digest in rows}
    with index._lock:
        recorded = infos(index._connection, [int(ids[p]) for members in groups for p in members])
    result = []
    for members in groups:
        photos = []
        for p in members:
            row_id = int(ids[p])
            path, size, _ = details[row_id]
            info = recorded[row_id]
            pixels = (info.width or 0) * (info.height or 0) or _pixels(path)
            photos.append(Photo(row_id, path, size, pixels, info.taken, info.taken_key))
        photos.sort(key=lambda photo: (-photo.pixels, photo.taken_key, -photo.size, photo.path))
        photos[0] = Photo(**dict(photos[0].__dict__, keep=True))
        exact = len({details[photo.id][2] for photo in photos}) == 1 and details[photos[0].id][2] is not None
        result.append(Group(photos, exact))
    result.sort(key=lambda group: (-len(group.photos), group.keep.path))
    return result


def _pixels(path: str) -> int:
    """width x height from the file's header (not decoded), 0 when it cannot be read."""
    from PIL import Image

    from ..image import load_plugins

    load_plugins()
    try:
        with Image.open(path) as image:
            return image.size[0] * image.size[1]
    except Exception:  # noqa: BLE001 - gone or damaged: it just cannot win on size
        return 0


def to_json(groups: List[Group]) -> list:
    """The groups as `ruclip duplicates --json` prints them."""
    return [dict(keep=group.keep.path, exact_copies=group.exact,
                 photos=[dict(path=photo.path, keep=photo.keep, bytes=photo.size, pixels=photo.pixels,
                              taken=photo.taken) for photo in group.photos]) for group in groups]
