"""create_app: the ASGI app serving a RuCLIP model (the JSON API) and, given an index, the search page.

Run it under any ASGI server (uvicorn, hypercorn, gunicorn's uvicorn worker), or with
`ruclip serve`, which runs it under uvicorn (server.run). Every answer that is not a success is
JSON, {"error": {"message", "type", "code"}}: refusals, validation errors, unknown routes, a full
queue (503 with Retry-After) and failures (500, the traceback logged, never sent).
"""
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Optional, Sequence

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from . import api, page
from .batching import QueueFull
from .metrics import Metrics, RequestLog
from .safety import ApiKey, BodyLimit, HostCheck, error_response
from .towers import BadInput, Towers

MAX_BODY = 50 << 20  # bytes of one request
MAX_INPUTS = 2048  # texts or images in one request (OpenAI's limit for embeddings)
MAX_QUEUE = 4096  # items waiting per tower before 503
RETRY_AFTER = 1  # seconds, in a 503's Retry-After
TIMEOUT = 120.0  # seconds a request may wait for its forward pass before 504
logger = logging.getLogger('ruclip.serve')


@dataclass
class Served:
    """What the routes share: the model's towers, its name and size, the limits on one request."""
    towers: Towers
    name: str
    embed_dim: int
    max_inputs: int
    decode_options: dict
    created: int = field(default_factory=lambda: int(time.time()))

    def check_model(self, model: Optional[str]) -> None:
        if model is not None and model != self.name:
            raise HTTPException(404, f'model {model!r} is not served here; this server serves {self.name!r} '
                                     f'(GET /v1/models)')

    def check_inputs(self, values: Sequence[str], what: str) -> list:
        if not values:
            raise BadInput(f'{what} is empty: give at least one item', 'empty_input')
        if len(values) > self.max_inputs:
            raise BadInput(f'{what} has {len(values)} items; at most {self.max_inputs} in one request',
                           'too_many_inputs')
        for position, value in enumerate(values):
            if not value.strip():
                raise BadInput(f'{what}[{position}] is empty or blank', 'empty_input')
        return list(values)

    def check_templates(self, templates: Sequence[str]) -> list:
        from ..predictor import check_templates

        try:
            return check_templates(self.check_inputs(templates, 'templates'))
        except ValueError as error:
            raise BadInput(str(error), 'invalid_templates') from None


def create_app(predictor=None, *, index=None, model_name: Optional[str] = None, host: str = '127.0.0.1',
               allowed_hosts: Sequence[str] = (), api_key: Optional[str] = None, allow_urls: bool = False,
               cors: Sequence[str] = (), max_batch: int = 64, max_wait_ms: float = 5.0, max_queue: int = MAX_QUEUE,
               max_inputs: int = MAX_INPUTS, max_body: int = MAX_BODY, max_pixels: Optional[int] = None,
               timeout: float = TIMEOUT) -> FastAPI:
    """The ASGI app serving `predictor` (a ruclip Predictor), or `index`'s model and search page.

    index: an ImageIndex; adds the search page and its API (page.py), served by the index's model.
    model_name: the name /v1/models lists and requests must give (default: the model's, as loaded).
    host: the address the server listens on; with allowed_hosts, the names its Host header may give.
    api_key: required on every route but /health (Bearer, or the password of Basic for the page).
    allow_urls: images may be http(s) URLs, which the server fetches (off: data URIs only).
    cors: origins allowed to call the API from a browser (none by default).
    max_batch, max_wait_ms, max_queue: the batching (batching.Batcher), per tower.
    max_inputs, max_body, max_pixels: limits on one request: items, bytes, pixels of each image
        (default: Pillow's PIL.Image.MAX_IMAGE_PIXELS).
    timeout: seconds a request may wait for the model (queue and forward pass) before a 504.
    """
    from PIL import Image

    if (predictor is None) == (index is None):
        raise ValueError('give create_app a predictor or an index (whose model is then served), not both')
    predictor = index.predictor if index is not None else predictor  # loaded now: /health is ready at start
    towers = Towers(predictor, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue, timeout=timeout)
    identity = predictor.identity
    if index is not None and index.model is not None:
        identity = type(identity).from_dict(index.model)
    draft = predictor.clip_processor.image_size if predictor.jpeg_draft else None
    served = Served(towers, model_name or identity.name, identity.embed_dim, max_inputs,
                    dict(allow_urls=allow_urls, max_pixels=max_pixels or Image.MAX_IMAGE_PIXELS or 2 ** 62,
                         max_bytes=max_body, draft_size=draft))
    metrics = Metrics(towers)

    @asynccontextmanager
    async def lifespan(app):
        towers.start()
        yield
        await towers.stop()

    middleware = [Middleware(RequestLog, metrics=metrics), Middleware(HostCheck, host=host, extra=allowed_hosts)]
    if cors:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(cors), allow_methods=['GET', 'POST'],
                                     allow_headers=['Authorization', 'Content-Type']))
    if api_key:
        middleware.append(Middleware(ApiKey, key=api_key))
    middleware.append(Middleware(BodyLimit, max_bytes=max_body))
    app = FastAPI(title='ruclip serve', version=_version(), lifespan=lifespan, middleware=middleware,
                  description='RuCLIP embeddings (OpenAI-compatible), zero-shot labels, ranking'
                              + (' and image search' if index is not None else ''))
    app.state.served, app.state.metrics = served, metrics
    _add_error_handlers(app)

    @app.get('/health', summary='200 once the model is loaded and the batchers run')
    async def health():
        if not towers.running:
            return error_response(503, 'the model is not being served (starting or stopping)', 'not_ready',
                                  {'Retry-After': str(RETRY_AFTER)})
        return {'status': 'ok', 'model': served.name}

    @app.get('/metrics', summary="Prometheus metrics (needs prometheus-client)", include_in_schema=False)
    async def prometheus_metrics():
        exposition = metrics.exposition()
        if exposition is None:
            return error_response(404, 'metrics need prometheus-client: pip install prometheus-client', 'not_found')
        return Response(exposition, media_type='text/plain; version=0.0.4; charset=utf-8')

    app.include_router(api.router(served))
    if index is not None:
        app.include_router(page.router(index, max_body, served.decode_options['max_pixels']))
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BadInput)
    async def bad_input(request, error: BadInput):
        return error_response(400, str(error), error.code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, error: RequestValidationError):
        problems = '; '.join(f"{_field(problem['loc'])}: {problem['msg']}" for problem in error.errors()[:10])
        if any(tuple(problem['loc']) == ('body',) for problem in error.errors()):
            problems += ' (send a JSON object, with the header Content-Type: application/json)'
        return error_response(400, f'invalid request: {problems}', 'invalid_request')

    @app.exception_handler(HTTPException)
    async def http_error(request, error: HTTPException):
        codes = {404: 'not_found', 405: 'method_not_allowed'}
        return error_response(error.status_code, str(error.detail), codes.get(error.status_code, 'http_error'),
                              getattr(error, 'headers', None))

    @app.exception_handler(QueueFull)
    async def busy(request, error: QueueFull):
        return error_response(503, f'the server is busy: {error}; retry after {RETRY_AFTER} s', 'queue_full',
                              {'Retry-After': str(RETRY_AFTER)})

    @app.exception_handler(TimeoutError)
    async def too_slow(request, error: TimeoutError):
        return error_response(504, 'the model did not answer in time; the server is overloaded or stuck',
                              'timeout')

    @app.exception_handler(Exception)
    async def failure(request, error: Exception):
        logger.error('%s %s failed', request.method, request.url.path, exc_info=error)
        return error_response(500, f'the server failed on this request ({type(error).__name__}); its log '
                                   f'has the details', 'server_error')


def _field(location: tuple) -> str:
    """A validation error's location as the client wrote it: ('body', 'input', 0) -> 'input.0'."""
    parts = location[1:] if location[:1] == ('body',) else location
    return '.'.join(str(part) for part in parts) or 'body'


def _version() -> str:
    from .. import __version__
    return __version__
