"""What an index knows about each photo besides its latent: when it was taken, by which camera, where,
its pixel size, and its tags (ruclip.search.tags). Tables `photos` and `tags`, added by index format
version 2 (upgrade() brings a version 1 file up to date in place, in one transaction).

When a photo was taken: EXIF DateTimeOriginal (with OffsetTimeOriginal when the camera wrote it),
else DateTime, else the file's modification time, marked taken_source='mtime'. `taken` is the
ISO 8601 text as the camera wrote it (with its offset when known); `taken_key` is that wall-clock
time in seconds since 1970 as if it were UTC, so photos sort and filter by the date and hour shown
on the camera, wherever they were taken (a file's mtime counts in this machine's local time).
"""
import datetime
import logging
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from .database import has_tables, immediate

logger = logging.getLogger('ruclip')
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATE_TIME_ORIGINAL, OFFSET_TIME_ORIGINAL, DATE_TIME, MODEL, MAKE = 0x9003, 0x9011, 0x0132, 0x0110, 0x010F
RECORD_ROWS = 256  # photos read and committed per transaction
READERS = 4  # threads reading headers (file I/O and PIL's header parsing)


@dataclass(frozen=True)
class PhotoInfo:
    """One photo's record. taken: ISO 8601; taken_source: 'exif' or 'mtime'."""
    taken: str
    taken_key: float
    taken_source: str
    camera: Optional[str] = None
    latitude: Optional[float] = None
    longitude: Optional[float] = None
    width: Optional[int] = None
    height: Optional[int] = None

    def to_dict(self) -> dict:
        place = None if self.latitude is None else dict(latitude=self.latitude, longitude=self.longitude)
        return dict(taken=self.taken, taken_from=self.taken_source, camera=self.camera, gps=place,
                    width=self.width, height=self.height)


def read_info(path: str, mtime_ns: int) -> PhotoInfo:
    """The photo's record from its EXIF header (the pixels are not decoded); what is missing or
    unreadable is left out, and the capture time falls back to mtime_ns."""
    from PIL import Image

    from ..image import load_plugins

    load_plugins()
    camera = latitude = longitude = width = height = None
    taken = None
    try:
        with Image.open(path) as image:
            width, height = image.size
            exif = image.getexif()
            details = exif.get_ifd(EXIF_IFD)
            taken = _exif_time(details.get(DATE_TIME_ORIGINAL) or exif.get(DATE_TIME),
                               details.get(OFFSET_TIME_ORIGINAL))
            camera = _camera(exif.get(MAKE), exif.get(MODEL))
            latitude, longitude = _gps(exif.get_ifd(GPS_IFD))
    except Exception as error:  # noqa: BLE001 - a damaged header: the file's time, no more
        logger.debug('no EXIF from %s: %s', path, error)
    if taken is None:
        local = datetime.datetime.fromtimestamp(mtime_ns / 1e9).astimezone()
        return PhotoInfo(local.isoformat(timespec='seconds'), _wall_clock(local), 'mtime', camera, latitude,
                         longitude, width, height)
    return PhotoInfo(taken.isoformat(timespec='seconds'), _wall_clock(taken), 'exif', camera, latitude, longitude,
                     width, height)


def record(connection: sqlite3.Connection, readers: int = READERS) -> int:
    """Read and store the record of every indexed photo that has none, or whose file changed since,
    and drop the records of photos no longer indexed; returns how many were read. Commits every
    RECORD_ROWS photos (an interruption keeps those; the next update reads the rest). The
    generation is left alone: no latent changed."""
    connection.execute('DELETE FROM photos WHERE id NOT IN (SELECT id FROM images)')
    connection.execute('DELETE FROM tags WHERE id NOT IN (SELECT id FROM images)')
    stale = connection.execute('SELECT i.id, i.path, i.size, i.mtime_ns FROM images i '
                               'LEFT JOIN photos p ON p.id = i.id '
                               'WHERE p.id IS NULL OR p.size != i.size OR p.mtime_ns != i.mtime_ns').fetchall()
    with ThreadPoolExecutor(readers) as pool:
        for start in range(0, len(stale), RECORD_ROWS):
            batch = stale[start:start + RECORD_ROWS]
            infos = pool.map(lambda row: read_info(os.fsdecode(row[1]), row[3]), batch)
            rows = [(row_id, size, mtime_ns, info.taken, info.taken_key, info.taken_source, info.camera,
                     info.latitude, info.longitude, info.width, info.height)
                    for (row_id, _, size, mtime_ns), info in zip(batch, infos)]
            with immediate(connection):
                connection.executemany('INSERT OR REPLACE INTO photos VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', rows)
    return len(stale)


def infos(connection: sqlite3.Connection, ids: Iterable[int]) -> Dict[int, PhotoInfo]:
    """{id: PhotoInfo} for these rows; a row the index has no record of yet (a version 1 file, or one
    not updated since) gets its file's mtime as recorded in the index, marked 'mtime'."""
    ids = [int(row_id) for row_id in ids]
    found, recorded = {}, has_tables(connection)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ','.join('?' * len(chunk))
        for row_id, *fields in [] if not recorded else connection.execute(
                f'SELECT id, taken, taken_key, taken_source, camera, latitude, longitude, width, height FROM photos '
                f'WHERE id IN ({marks})', chunk):
            found[row_id] = PhotoInfo(*fields)
        for row_id, mtime_ns in connection.execute(f'SELECT id, mtime_ns FROM images WHERE id IN ({marks})', chunk):
            if row_id not in found:
                local = datetime.datetime.fromtimestamp(mtime_ns / 1e9).astimezone()
                found[row_id] = PhotoInfo(local.isoformat(timespec='seconds'), _wall_clock(local), 'mtime')
    return found


def ids_taken(connection: sqlite3.Connection, after: Optional[float], before: Optional[float]) -> np.ndarray:
    """Ids of the photos taken at or after `after` and before `before` (taken_key seconds; None: no bound)."""
    query = 'SELECT i.id, COALESCE(p.taken_key, -1e18) FROM images i LEFT JOIN photos p ON p.id = i.id' \
        if has_tables(connection) else 'SELECT id, -1e18 FROM images'
    keys = np.array(connection.execute(query).fetchall(), dtype=np.float64).reshape(-1, 2)
    if not len(keys):
        return np.empty(0, np.int64)
    ids = keys[:, 0].astype(np.int64)
    missing = keys[:, 1] == -1e18
    if missing.any():  # not read yet: the recorded mtime
        fallback = infos(connection, ids[missing])
        keys[missing, 1] = [fallback[row_id].taken_key for row_id in ids[missing]]
    keep = np.ones(len(ids), bool)
    if after is not None:
        keep &= keys[:, 1] >= after
    if before is not None:
        keep &= keys[:, 1] < before
    return ids[keep]


def parse_date(value: str, option: str) -> float:
    """'2024-06-01' or '2024-06-01T18:30[:00]' (or with a space) as taken_key seconds; ValueError naming the option."""
    try:
        moment = datetime.datetime.fromisoformat(value.strip().replace(' ', 'T'))
    except ValueError:
        raise ValueError(f'{option} {value!r}: expected a date as YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]') from None
    return _wall_clock(moment)


def _wall_clock(moment: datetime.datetime) -> float:
    """The date and time shown, as seconds since 1970 as if it were UTC (its offset ignored)."""
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def _exif_time(text, offset) -> Optional[datetime.datetime]:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.strptime(text.strip().rstrip('\x00')[:19], '%Y:%m:%d %H:%M:%S')
    except ValueError:
        return None
    if isinstance(offset, str):
        try:
            sign = -1 if offset.strip().startswith('-') else 1
            hours, minutes = (int(part) for part in offset.strip().lstrip('+-').split(':')[:2])
            moment = moment.replace(tzinfo=datetime.timezone(sign * datetime.timedelta(hours=hours, minutes=minutes)))
        except ValueError:
            pass
    return moment


def _camera(make, model) -> Optional[str]:
    make = make.strip().strip('\x00') if isinstance(make, str) else ''
    model = model.strip().strip('\x00') if isinstance(model, str) else ''
    if model and make and not model.lower().startswith(make.split()[0].lower()):
        return f'{make} {model}'
    return model or make or None


def _gps(gps) -> Tuple[Optional[float], Optional[float]]:
    """(latitude, longitude) in degrees from an EXIF GPS IFD, or (None, None)."""
    try:
        latitude = _degrees(gps[2]) * (-1 if str(gps.get(1, 'N')).upper().startswith('S') else 1)
        longitude = _degrees(gps[4]) * (-1 if str(gps.get(3, 'E')).upper().startswith('W') else 1)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, IndexError):
        return None, None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None, None
    return round(latitude, 7), round(longitude, 7)


def _degrees(value) -> float:
    degrees, minutes, seconds = (float(part) for part in value)
    return degrees + minutes / 60 + seconds / 3600


def filtered_ids(index, after: Optional[float] = None, before: Optional[float] = None,
                 tags: Iterable[str] = ()) -> Optional[np.ndarray]:
    """The row ids of an ImageIndex's photos taken in [after, before) and carrying every tag of
    `tags`, for ImageIndex.search(only=...); None when nothing is asked (no filter)."""
    from .tags import ids_tagged

    tags = list(tags)
    if after is None and before is None and not tags:
        return None
    if index._connection is None:
        return np.empty(0, np.int64)
    with index._lock:
        ids = ids_taken(index._connection, after, before)
        for tag in tags:
            ids = np.intersect1d(ids, ids_tagged(index._connection, tag))
    return ids


def describe(index, ids: Iterable[int]) -> Dict[int, dict]:
    """{id: PhotoInfo.to_dict() with 'tags' (best first) and 'taken_key'} for an ImageIndex's rows."""
    from .tags import tags_of

    ids = list(ids)
    if index._connection is None or not ids:
        return {}
    with index._lock:
        recorded, tagged = infos(index._connection, ids), tags_of(index._connection, ids)
    return {row_id: dict(recorded[row_id].to_dict(), tags=tagged.get(row_id, []), taken_key=recorded[row_id].taken_key)
            for row_id in ids}


SORTS = ('score', 'date')


def in_order(hits: list, details: Dict[int, dict], sort: str) -> list:
    """The hits (best first) in the order `sort` asks: 'score' as they are; 'date' by the date taken
    (describe()'s taken_key), oldest first, ties by rank. ValueError for another order."""
    if sort not in SORTS:
        raise ValueError(f'sort must be one of {list(SORTS)}, got {sort!r}')
    if sort == 'score':
        return list(hits)
    return sorted(hits, key=lambda hit: (details[hit.id]['taken_key'], hit.rank))
