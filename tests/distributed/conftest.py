"""Shared by the distributed tests: a folder of tiny images, a Predictor, a local HTTP server."""
import http.server
import os
import threading
import time

import numpy as np
import pytest

import ruclip
from helpers.images import encoded, rgb_image

N_IMAGES = 40


@pytest.fixture(autouse=True)
def _distributed_extra():
    pytest.importorskip('pyarrow')  # the [distributed] extra: the shards' metadata files


@pytest.fixture(scope='session')
def image_folder(tmp_path_factory):
    """N_IMAGES readable images (PNG and JPEG, two in a subfolder) and one broken .jpg."""
    folder = tmp_path_factory.mktemp('images')
    (folder / 'sub').mkdir()
    for i in range(N_IMAGES):
        name = f'sub/{i:03d}.png' if i < 2 else f'{i:03d}.' + ('jpg' if i % 2 else 'png')
        (folder / name).write_bytes(encoded(rgb_image(24 + i % 5, 20 + i % 3, seed=i), 'JPEG' if i % 2 else 'PNG'))
    (folder / 'broken.jpg').write_bytes(b'not a jpeg')
    return folder


@pytest.fixture(scope='session')
def shard_predictor(tiny_checkpoint):
    clip, processor = ruclip.load(str(tiny_checkpoint))
    return ruclip.Predictor(clip, processor, 'cpu', bs=8, quiet=True, num_workers=2)


class _Images(http.server.BaseHTTPRequestHandler):
    """/img/<seed>.png: an image; /slow.png: no answer for 4 s; anything else: 404."""

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == '/slow.png':
            time.sleep(4)
            return  # the client has given up
        if self.path.startswith('/img/'):
            body = encoded(rgb_image(30, 20, seed=int(self.path[5:].split('.')[0])), 'PNG')
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture(scope='session')
def image_server():
    """The base URL of a server on 127.0.0.1 (see _Images)."""
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Images)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def shard_files(out) -> dict:
    """Relative path -> bytes of every data file in a shards folder (not markers or the manifest)."""
    files = {}
    for folder in ('img_emb', 'text_emb', 'metadata', 'failed'):
        path = os.path.join(out, folder)
        for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
            with open(os.path.join(path, name), 'rb') as file:
                files[f'{folder}/{name}'] = file.read()
    return files


def all_rows(out):
    """(embedded image_path values, failed image_path values) over every partition, in order."""
    import pyarrow.parquet as pq

    embedded, failed = [], []
    for kind, rows in (('metadata', embedded), ('failed', failed)):
        folder = os.path.join(out, kind)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            rows += pq.read_table(os.path.join(folder, name)).column('image_path').to_pylist()
    return embedded, failed


def unit_norm(latents):
    return np.abs(np.linalg.norm(latents.astype(np.float32), axis=1) - 1).max() < 2e-3
