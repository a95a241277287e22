"""The app's guards, as plain ASGI middleware: Host check, API key, body size, JSON error answers.

Each answers a refused request itself with a JSON error and never calls the app for it.
- Host: a request whose Host header is not one of the server's own names or addresses is refused
  (400), so a web page whose domain an attacker points at 127.0.0.1 (DNS rebinding) cannot read
  anything through the user's browser. An IP address is accepted when the server listens on it
  (any, when it listens on all addresses): rebinding needs a domain name.
- API key: `Authorization: Bearer KEY` (what OpenAI clients send), or KEY as the password of Basic
  authentication (what a browser asks for on the page), compared in constant time (401).
- Body size: a larger Content-Length is refused before anything is read, and a body without one is
  read up to the limit and refused past it (413).
"""
import base64
import binascii
import hmac
import ipaddress
import socket
from typing import Iterable, Optional, Sequence

from starlette.responses import JSONResponse

LOOPBACK_NAMES = ('localhost',)
WILDCARDS = ('', '0.0.0.0', '::')  # listening on every address
OPEN_PATHS = ('/health',)  # answered without the API key: a load balancer's probe, no data


def error_response(status: int, message: str, code: str, headers: Optional[dict] = None) -> JSONResponse:
    """The one shape of every error: {"error": {"message", "type", "code"}}, as OpenAI's API answers."""
    kind = 'invalid_request_error' if status < 500 else 'server_error'
    if status == 401:
        kind = 'authentication_error'
    return JSONResponse({'error': {'message': message, 'type': kind, 'code': code}}, status_code=status,
                        headers=headers)


def allowed_hosts(host: str, extra: Sequence[str] = ()) -> tuple:
    """(names, addresses, any_address) the server answers to when it listens on `host`."""
    names = {*LOOPBACK_NAMES, *(_normalise(name) for name in extra)}
    addresses, any_address = set(), host in WILDCARDS
    try:
        addresses.add(ipaddress.ip_address(host.strip('[]')))
    except ValueError:
        if not any_address:
            names.add(_normalise(host))
    if any_address or not all(address.is_loopback for address in addresses):  # reachable from elsewhere
        names.update(_normalise(name) for name in (socket.gethostname(), socket.getfqdn()) if name)
    return frozenset(names), frozenset(addresses), any_address


class HostCheck:
    """Refuses requests whose Host header names another server (DNS rebinding)."""

    def __init__(self, app, host: str = '127.0.0.1', extra: Iterable[str] = ()):
        self.app = app
        self.names, self.addresses, self.any_address = allowed_hosts(host, tuple(extra))

    def accepts(self, value: Optional[str]) -> bool:
        if value is None:
            return True  # HTTP/1.0 without Host: not a browser, so not a rebinding
        name = _host_name(value)
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return name in self.names
        return self.any_address or address.is_loopback or address in self.addresses

    async def __call__(self, scope, receive, send):
        if scope['type'] == 'http':
            host = _header(scope, b'host')
            if not self.accepts(host):
                response = error_response(400, f'Host {host!r} is not a name of this server (start it with '
                                               f'--allowed-host NAME to answer to that name)', 'invalid_host')
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


class ApiKey:
    """Requires the API key (Bearer, or the password of Basic authentication) on every path but OPEN_PATHS."""

    def __init__(self, app, key: str):
        self.app, self.key = app, key.encode('utf-8')

    def accepts(self, value: Optional[str]) -> bool:
        scheme, _, credentials = (value or '').strip().partition(' ')
        credentials = credentials.strip()
        if scheme.lower() == 'basic':
            try:
                credentials = base64.b64decode(credentials, validate=True).decode('utf-8').partition(':')[2]
            except (binascii.Error, UnicodeDecodeError):
                return False
        elif scheme.lower() != 'bearer':
            return False
        return hmac.compare_digest(credentials.encode('utf-8', 'surrogateescape'), self.key)

    async def __call__(self, scope, receive, send):
        if scope['type'] == 'http' and scope['path'] not in OPEN_PATHS and scope['method'] != 'OPTIONS':
            if not self.accepts(_header(scope, b'authorization')):
                api = scope['path'].startswith('/v1/') or scope['path'] == '/metrics'
                challenge = 'Bearer' if api else 'Basic realm="ruclip", charset="UTF-8"'
                response = error_response(401, 'a valid API key is needed: send "Authorization: Bearer KEY"',
                                          'invalid_api_key', {'WWW-Authenticate': challenge})
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuses request bodies over max_bytes with 413; the app sees the body only once it is all read."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope['type'] != 'http':
            return await self.app(scope, receive, send)
        length = _header(scope, b'content-length')
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            status, message = (413, self._too_large()) if length.isdigit() else \
                (400, f'Content-Length must be a number of bytes, got {length!r}')
            return await error_response(status, message, 'request_too_large' if status == 413 else
                                        'invalid_header')(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message['type'] == 'http.disconnect':
                return
            chunks.append(message.get('body', b''))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await error_response(413, self._too_large(), 'request_too_large')(scope, receive, send)
            if not message.get('more_body', False):
                break
        body, sent = b''.join(chunks), False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # after the body: the disconnect, when it comes
            sent = True
            return {'type': 'http.request', 'body': body, 'more_body': False}

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f'the request body is over the limit of {self.max_bytes} bytes'


def _header(scope, name: bytes) -> Optional[str]:
    for key, value in scope['headers']:
        if key == name:
            return value.decode('latin-1')
    return None


def _host_name(value: str) -> str:
    """The name or address of a Host header, without its port: 'a.b:80' -> 'a.b', '[::1]:80' -> '::1'."""
    value = value.strip()
    if value.startswith('['):
        value = value[1:value.find(']')] if ']' in value else value
    elif value.count(':') == 1:
        value = value.partition(':')[0]
    return _normalise(value)


def _normalise(name: str) -> str:
    return name.strip().lower().rstrip('.')
