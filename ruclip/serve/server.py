"""Run the app under uvicorn: `ruclip serve`'s server.

A request uvicorn cannot parse (a malformed header, a bad Content-Length, headers over h11's size
limit) is answered with the app's JSON error shape rather than uvicorn's plain text, then closed.
"""
import json
import socket
import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

BACKLOG = 2048  # connections waiting to be accepted (the standard library's server had 5)
KEEP_ALIVE = 5  # seconds an idle connection is kept open


class JsonErrorsH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, its answer to an unparsable request in the app's JSON error shape."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({'error': {'message': f'malformed HTTP request: {msg}', 'type': 'invalid_request_error',
                                     'code': 'malformed_request'}}).encode()
        headers = [(b'content-type', b'application/json'), (b'content-length', str(len(body)).encode()),
                   (b'connection', b'close')]
        for event in (h11.Response(status_code=400, headers=headers, reason=b'Bad Request'), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) and listening (port 0: a free one, read it from getsockname())."""
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that say they
    # are TCP; with it on, every answer on a kept-alive connection waited ~40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def make_server(app, log_level: str = 'warning') -> uvicorn.Server:
    """A uvicorn Server for `app` (not running: server.run(sockets=[listening_socket(...)]))."""
    return uvicorn.Server(uvicorn.Config(app, http=JsonErrorsH11Protocol, lifespan='on', access_log=False,
                                         log_level=log_level, timeout_keep_alive=KEEP_ALIVE, backlog=BACKLOG,
                                         server_header=False))


def run(app, sock: socket.socket, log_level: str = 'warning') -> None:
    """Serve `app` on the listening socket until interrupted (Ctrl-C or SIGTERM)."""
    make_server(app, log_level).run(sockets=[sock])
