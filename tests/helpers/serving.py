"""Serving in tests: an app run by uvicorn on a free port, images as data URIs."""
import base64
import io
import threading
import time
from contextlib import contextmanager

from helpers.images import rgb_image


@contextmanager
def live(app):
    """Serve `app` with uvicorn (ruclip serve's server) on 127.0.0.1, a free port: yields its base URL."""
    from ruclip.serve.server import listening_socket, make_server

    sock = listening_socket('127.0.0.1', 0)
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs=dict(sockets=[sock]), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, 'uvicorn did not start'
        time.sleep(0.01)
    try:
        yield f'http://127.0.0.1:{sock.getsockname()[1]}'
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def png_bytes(seed: int, size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    rgb_image(*size, seed=seed).save(buffer, format='PNG')
    return buffer.getvalue()


def data_uri(data: bytes, kind: str = 'image/png') -> str:
    return f'data:{kind};base64,{base64.b64encode(data).decode()}'


def get(url: str, data: bytes = None):
    """(status, body) of a GET, or of a POST of `data`; an error status is returned, not raised."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
