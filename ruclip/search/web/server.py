"""The page's HTTP server: the standard library's ThreadingHTTPServer, no other dependency.

Routes: GET / and /app.js (the page, fixed files of this package); GET /api/search?q=TEXT&k=K (a
text query, through the model's templates); POST /api/search?k=K with an image file as the body
(an example image); GET /api/similar?id=ID&k=K (the images like an indexed one, from its stored
latent); GET /thumb/ID and /image/ID (an indexed image, scaled down or whole).
Images are named by their row id in the index, never by a path from the URL, and one is served
only when its file, symlinks resolved, lies inside a folder (or is a file) that was indexed: no
`../`, absolute path or outward symlink reaches anything else. Thumbnails are made on first request
and kept in memory (THUMBNAIL_CACHE of them, least recently used dropped first).
"""
import io
import json
import logging
import os
import threading
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

STATIC = {'/': ('index.html', 'text/html; charset=utf-8'), '/app.js': ('app.js', 'text/javascript; charset=utf-8')}
THUMBNAIL_SIDE = 256
THUMBNAIL_CACHE = 2048
MAX_UPLOAD = 50 << 20
MAX_K = 500
logger = logging.getLogger('ruclip')


class Thumbnails:
    """JPEG thumbnails by (path, size, mtime_ns), least recently used dropped past `capacity`."""

    def __init__(self, capacity: int = THUMBNAIL_CACHE):
        self.capacity, self.items, self.lock = capacity, OrderedDict(), threading.Lock()

    def get(self, path: str) -> bytes:
        from PIL import Image

        from ...image import open_image

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


def make_server(index, host: str = '127.0.0.1', port: int = 8000) -> ThreadingHTTPServer:
    """A server (not yet serving: call serve_forever) for `index`, an ImageIndex with its predictor."""
    roots = [os.path.realpath(root) for root in index.roots()]
    index.predictor  # noqa: B018 - the model is loaded once, before any request
    thumbnails = Thumbnails()

    class Handler(BaseHTTPRequestHandler):
        server_version = 'ruclip-serve'

        def log_message(self, format, *args):  # noqa: A002 - the standard library's name
            logger.debug('serve: ' + format, *args)

        def do_GET(self):  # noqa: N802 - the standard library's name
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            try:
                if url.path in STATIC:
                    name, content_type = STATIC[url.path]
                    with open(os.path.join(os.path.dirname(__file__), 'static', name), 'rb') as file:
                        return self._send(HTTPStatus.OK, file.read(), content_type)
                if url.path == '/api/search':
                    text = query.get('q', [''])[0]
                    return self._results(lambda k: index.search(text, k))
                if url.path == '/api/similar':
                    row_id = _int(query.get('id', [''])[0], 'id')
                    return self._results(lambda k: index.similar(row_id, k))
                for prefix in ('/thumb/', '/image/'):
                    if url.path.startswith(prefix):
                        path = self._indexed_file(url.path[len(prefix):])
                        if path is None:
                            return self._error(HTTPStatus.NOT_FOUND, 'no such image in the index')
                        if prefix == '/thumb/':
                            return self._send(HTTPStatus.OK, thumbnails.get(path), 'image/jpeg', cache=True)
                        with open(path, 'rb') as file:
                            return self._send(HTTPStatus.OK, file.read(), 'application/octet-stream', cache=True)
                return self._error(HTTPStatus.NOT_FOUND, 'not found')
            except (ValueError, KeyError) as error:
                return self._error(HTTPStatus.BAD_REQUEST, str(error).strip("'\""))
            except OSError as error:
                return self._error(HTTPStatus.NOT_FOUND, f'cannot read the image: {error.strerror or error}')

        def do_POST(self):  # noqa: N802
            url = urlsplit(self.path)
            if url.path != '/api/search':
                return self._error(HTTPStatus.NOT_FOUND, 'not found')
            length = int(self.headers.get('Content-Length') or 0)
            if not 0 < length <= MAX_UPLOAD:
                return self._error(HTTPStatus.BAD_REQUEST, f'send one image file of at most {MAX_UPLOAD >> 20} MB')
            body = self.rfile.read(length)
            try:
                return self._results(lambda k: index.search(body, k), parse_qs(url.query))
            except ValueError as error:
                return self._error(HTTPStatus.BAD_REQUEST, str(error))

        def _results(self, search, query=None):
            query = query if query is not None else parse_qs(urlsplit(self.path).query)
            k = _int(query.get('k', ['24'])[0], 'k')
            if not 1 <= k <= MAX_K:
                raise ValueError(f'k must be between 1 and {MAX_K}, got {k}')
            hits = search(k)
            body = dict(results=[dict(id=hit.id, path=hit.path, name=os.path.basename(hit.path),
                                      score=round(hit.score, 4), rank=hit.rank) for hit in hits], size=len(index))
            return self._send(HTTPStatus.OK, json.dumps(body, ensure_ascii=False).encode('utf-8', 'surrogateescape'),
                              'application/json; charset=utf-8')

        def _indexed_file(self, row_id: str):
            if not (row_id.isascii() and row_id.isdigit()):
                return None
            path = index.path_of(int(row_id))
            if path is None or '://' in path:
                return None
            real = os.path.realpath(path)
            inside = any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in roots)
            return real if inside and os.path.isfile(real) else None

        def _error(self, status, message):
            self._send(status, json.dumps(dict(error=message), ensure_ascii=False).encode(), 'application/json')

        def _send(self, status, body: bytes, content_type: str, cache: bool = False):
            self.send_response(status)
            self.send_header('Content-Type', content_type)
            self.send_header('Content-Length', str(len(body)))
            self.send_header('X-Content-Type-Options', 'nosniff')
            if cache:
                self.send_header('Cache-Control', 'max-age=3600')
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _int(value: str, name: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f'{name} must be a whole number, got {value!r}')
    return int(value)
