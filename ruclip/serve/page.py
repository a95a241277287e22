"""The search page and its API, for an ImageIndex: GET / and /app.js (fixed files of this package);
GET /api/search?q=TEXT&k=K (a text, through the model's templates); POST /api/search?k=K with an image
file as the body (an example image); GET /api/similar?id=ID&k=K (images like an indexed one, from its
stored latent); GET /thumb/ID and /image/ID (an indexed image, scaled down, or whole with its own
content type); GET /api/tags (the tags stored by `ruclip tag`, with their counts); GET /api/duplicates
(the groups of near-identical photos, ruclip.search.duplicates).

The three searches take the filters of `ruclip search`: after, before (the date taken), tag (repeat:
all of them) and sort (score or date), through the same functions (photos.filtered_ids, given to the
index's search as `only`, so the top k is taken among the photos kept; photos.in_order).

Results are ImageIndex's hits as they are (dataclasses.asdict, the score rounded, plus the file's
name) with what the index knows of each photo (photos.describe: taken, taken_from, camera, gps,
width, height, tags), so what the index returns, the page gets. Images are named by their row id in
the index, never by a path from the URL, and one is served only when its file, symlinks resolved,
lies inside a folder (or is a file) that the index holds now (re-read at each request, so a folder
indexed while the server runs is served at once): no `../`, absolute path or outward symlink reaches
anything else.
"""
import dataclasses
import io
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import List, Literal, Optional

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParameter
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from .towers import BadInput, open_limited

STATIC = os.path.join(os.path.dirname(__file__), 'static')
THUMBNAIL_SIDE = 256
THUMBNAIL_CACHE = 2048
MAX_K = 500
MAX_ROW_ID = 2 ** 63 - 1  # SQLite's largest integer
CACHED = {'Cache-Control': 'max-age=3600', 'X-Content-Type-Options': 'nosniff'}
DATE_FORMAT = 'YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], the time the camera shows (EXIF, else the file time)'
MIN_DUPLICATE_THRESHOLD = 0.5  # lower cosines link most of a library: n^2 / 2 pairs held at once


@dataclass(frozen=True)
class PhotoFilter:
    """What a search keeps and how it orders them: only, the row ids kept (None: all); sort, photos.SORTS."""
    only: Optional[np.ndarray]
    sort: str


class Thumbnails:
    """JPEG thumbnails by (path, size, mtime_ns), least recently used dropped past `capacity`."""

    def __init__(self, capacity: int = THUMBNAIL_CACHE):
        self.capacity, self.items, self.lock = capacity, OrderedDict(), threading.Lock()

    def get(self, path: str) -> bytes:
        from PIL import Image

        from ..image import open_image

        stat = os.stat(path)
        key = (path, stat.st_size, stat.st_mtime_ns)
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        image = open_image(path)
        image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.BILINEAR)
        buffer = io.BytesIO()
        image.convert('RGB').save(buffer, format='JPEG', quality=85)
        with self.lock:
            self.items[key] = buffer.getvalue()
            while len(self.items) > self.capacity:
                self.items.popitem(last=False)
        return buffer.getvalue()


def router(index, max_upload: int, max_pixels: int) -> APIRouter:
    """The page's routes for `index` (an ImageIndex whose predictor is loaded); an example image is
    refused past max_pixels (and max_upload bytes, app.BodyLimit's)."""
    routes = APIRouter()
    thumbnails = Thumbnails()
    k_parameter = Query(24, ge=1, le=MAX_K, description='results')

    def photo_filter(after: Optional[str] = Query(None, description=f'only photos taken on or after this date: '
                                                                   f'{DATE_FORMAT}', examples=['2024-06-01']),
                     before: Optional[str] = Query(None, description=f'only photos taken before this date: '
                                                                     f'{DATE_FORMAT}', examples=['2024-09-01']),
                     tag: List[str] = Query([], description='only photos with this tag (GET /api/tags lists them); '
                                                            'repeat: all of them'),
                     sort: Literal['score', 'date'] = Query('score', description='order of the top k: by score, or '
                                                                                 'by the date taken, oldest first')
                     ) -> PhotoFilter:  # sort's values: photos.SORTS
        return _photo_filter(index, after, before, tag, sort)  # a plain function: FastAPI runs it in a thread

    @routes.get('/', include_in_schema=False)
    async def page():
        return _static('index.html', 'text/html; charset=utf-8')

    @routes.get('/app.js', include_in_schema=False)
    async def script():
        return _static('app.js', 'text/javascript; charset=utf-8')

    @routes.get('/api/search', summary='images most like a Russian text')
    async def search_text(q: str = Query(description='the text'), k: int = k_parameter,
                          kept: PhotoFilter = Depends(photo_filter)):
        if not q.strip():
            raise BadInput('the query text is empty or blank: give words to search for', 'empty_query')
        return await run_in_threadpool(_results, index, kept, lambda only: index.search(q, k, only=only))

    @routes.post('/api/search', summary='images most like an example image (the body: an image file)')
    async def search_image(request: Request, k: int = k_parameter, kept: PhotoFilter = Depends(photo_filter)):
        body = await request.body()
        if not body:
            raise BadInput(f'send one image file of at most {max_upload >> 20} MB as the body', 'empty_image')
        image = await run_in_threadpool(open_limited, body, 'the image', max_pixels=max_pixels)
        return await run_in_threadpool(_results, index, kept, lambda only: index.search(image, k, only=only))

    @routes.get('/api/similar', summary='images most like an indexed one (from its stored latent)')
    async def similar(id: int = Query(ge=0, le=MAX_ROW_ID, description="the image's id in the index"),  # noqa: A002
                      k: int = k_parameter, kept: PhotoFilter = Depends(photo_filter)):
        return await run_in_threadpool(_results, index, kept, lambda only: index.similar(id, k, only=only))

    @routes.get('/api/tags', summary="the tags of the index's photos (`ruclip tag`), most used first")
    async def tags():
        """`{"tags": [{"tag", "count"}]}`: each tag and how many photos carry it; empty when the index is
        not tagged."""
        from ..search.tags import tag_counts

        counts = await run_in_threadpool(tag_counts, index)
        return {'tags': [dict(tag=tag, count=count) for tag, count in counts]}

    @routes.get('/api/duplicates', summary='groups of near-identical photos (`ruclip duplicates`)')
    async def duplicates(threshold: Optional[float] = Query(
            None, ge=MIN_DUPLICATE_THRESHOLD, le=1,
            description='photos whose latents have at least this cosine are one group (default: '
                        "ruclip.search.duplicates' own); exact copies always group")):
        """`{"groups": [{"exact", "keep", "photos": [{"id", "path", "name", "size", "pixels", "taken",
        "keep", ...}]}], "threshold", "size"}`: largest group first, the photo to keep first in each
        (`keep` is its id); `exact`: all of the group are copies of one file; `threshold`: the one used,
        {"value", "source" ("given", or "measured"/"stored"/"fallback": the index's own), "explanation"}."""
        groups, used = await run_in_threadpool(_duplicate_groups, index, threshold)
        return {'groups': groups, 'threshold': used, 'size': len(index)}

    @routes.get('/thumb/{row_id}', summary='an indexed image, scaled down (JPEG)')
    async def thumbnail(row_id: int = PathParameter(ge=0, le=MAX_ROW_ID)):
        path = await run_in_threadpool(_indexed_file, index, row_id)
        try:
            data = await run_in_threadpool(thumbnails.get, path)
        except (OSError, ValueError) as error:
            raise HTTPException(404, f'cannot read image {row_id}: {error}') from None
        return Response(data, media_type='image/jpeg', headers=CACHED)

    @routes.get('/image/{row_id}', summary='an indexed image, whole, with its content type')
    async def image(row_id: int = PathParameter(ge=0, le=MAX_ROW_ID)):
        path = await run_in_threadpool(_indexed_file, index, row_id)
        try:
            data, content_type = await run_in_threadpool(_read_image, path)
        except OSError as error:
            raise HTTPException(404, f'cannot read image {row_id}: {error.strerror or error}') from None
        return Response(data, media_type=content_type, headers=CACHED)

    return routes


def _photo_filter(index, after: Optional[str], before: Optional[str], tags: List[str], sort: str) -> PhotoFilter:
    """The query's filters, checked (BadInput naming the wrong one), as `ruclip search` applies them."""
    from ..search import photos
    from ..search.tags import clean_tags

    try:
        start, end = (None if value is None else photos.parse_date(value, name)
                      for value, name in ((after, 'after'), (before, 'before')))
    except ValueError as error:
        raise BadInput(str(error), 'invalid_date') from None
    if start is not None and end is not None and start >= end:
        raise BadInput(f'after {after!r} is not earlier than before {before!r}: no photo can be taken in that range',
                       'invalid_date')
    try:
        tags = clean_tags(tags)
    except ValueError:
        raise BadInput(f'tag must not be empty or blank, got {tags!r}', 'invalid_tag') from None
    return PhotoFilter(photos.filtered_ids(index, start, end, tags), sort)


def _results(index, kept: PhotoFilter, search) -> dict:
    """The hits of search(only) as JSON: each ImageIndex hit's fields, the file's name, and what the index
    knows of the photo; `kept`: how many photos the filters keep (null: no filter)."""
    from ..search import photos

    try:
        hits = search(kept.only)
    except KeyError as error:
        raise HTTPException(404, str(error).strip('\'"')) from None
    except (ValueError, TypeError) as error:
        raise BadInput(str(error), 'bad_image' if 'cannot read image' in str(error) else 'invalid_query') from None
    details = photos.describe(index, [hit.id for hit in hits])
    results = [dict(dataclasses.asdict(hit), name=os.path.basename(hit.path), score=round(hit.score, 4),
                    **{key: value for key, value in details[hit.id].items() if key != 'taken_key'})
               for hit in photos.in_order(hits, details, kept.sort)]
    return {'results': results, 'size': len(index), 'kept': None if kept.only is None else len(kept.only)}


def _duplicate_groups(index, threshold: Optional[float]) -> tuple:
    """(find_duplicates' groups as JSON, each photo as the module gives it plus its file's name; the threshold
    used: the given one, else the index's measured one, with its explanation)."""
    from ..search.duplicate_calibration import duplicate_threshold
    from ..search.duplicates import find_duplicates

    used = dict(value=threshold, source='given', explanation=f'threshold {threshold} given') \
        if threshold is not None else {key: value for key, value in duplicate_threshold(index).to_dict().items()
                                       if key != 'measured'}
    try:
        groups = find_duplicates(index, threshold=used['value'])
    except ValueError as error:
        raise BadInput(str(error), 'invalid_threshold') from None
    return [dict(exact=group.exact, keep=group.keep.id,
                 photos=[dict(dataclasses.asdict(photo), name=os.path.basename(photo.path)) for photo in group.photos])
            for group in groups], used


def _indexed_file(index, row_id: int) -> str:
    """The real path of the image with this id, when it lies inside what the index holds now; else 404."""
    path: Optional[str] = index.path_of(row_id)
    if path is not None and '://' not in path:
        real = os.path.realpath(path)
        roots = [os.path.realpath(root) for root in index.roots()]
        if any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots) \
                and os.path.isfile(real):
            return real
    raise HTTPException(404, f'no image with id {row_id} in the index')


def _read_image(path: str):
    """(bytes, content type) of an image file, the type from its content (Pillow's format), not its name."""
    from PIL import Image

    with open(path, 'rb') as file:
        data = file.read()
    try:
        with Image.open(io.BytesIO(data)) as image:
            content_type = image.get_format_mimetype() or 'application/octet-stream'
    except Exception:  # noqa: BLE001 - served as bytes; the viewer falls back to the thumbnail
        content_type = 'application/octet-stream'
    return data, content_type


def _static(name: str, content_type: str) -> Response:
    with open(os.path.join(STATIC, name), 'rb') as file:
        return Response(file.read(), media_type=content_type, headers={'X-Content-Type-Options': 'nosniff',
                                                                       'Cache-Control': 'no-cache'})
