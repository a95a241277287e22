"""`ruclip serve`: the embeddings API and, with an index, the search page (ruclip.serve, [serve])."""
import ipaddress
import logging
import os
import sys
from contextlib import contextmanager

from ._common import Command, UsageError, add_model_options, load_predictor, positive_int
from ._index import default_index, open_index

LOOPBACK = ('localhost',)


def _arguments(parser):
    parser.add_argument('--index', metavar='INDEX', default=None,
                        help='serve this index: the search page and its API, with the index\'s model (default: '
                             '$RUCLIP_INDEX or ~/.local/share/ruclip/images.ruclip-index when --model is not given)')
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on (default: 127.0.0.1, this machine '
                                                            'only; 0.0.0.0: every address)')
    parser.add_argument('--port', type=int, default=8000, help='port (default: 8000; 0: any free one)')
    parser.add_argument('--api-key', metavar='KEY', default=os.environ.get('RUCLIP_API_KEY') or None,
                        help='require "Authorization: Bearer KEY" (default: $RUCLIP_API_KEY; none)')
    parser.add_argument('--allow-urls', action='store_true',
                        help='let requests give images as http(s) URLs, which the server fetches (default: data URIs)')
    parser.add_argument('--cors', metavar='ORIGIN', action='append', default=[],
                        help='let web pages from ORIGIN call the API (repeatable; default: none)')
    parser.add_argument('--allowed-host', metavar='NAME', action='append', default=[],
                        help='another name the server may be called by in the Host header, e.g. behind a reverse '
                             'proxy (repeatable; its own names and addresses are always accepted)')
    parser.add_argument('--max-batch', type=positive_int, default=64, metavar='N',
                        help='most texts or images merged into one forward pass (default: 64)')
    parser.add_argument('--max-wait-ms', type=float, default=5.0, metavar='MS',
                        help='longest a request waits for others to join its batch (default: 5)')
    parser.add_argument('--queue', type=positive_int, default=4096, metavar='N',
                        help='most texts or images waiting per tower; past it, 503 with Retry-After (default: 4096)')
    add_model_options(parser, model_default=None, backend_default=None, dtype_default=None,
                      model_help='a model of `ruclip models` or a checkpoint folder: the API alone (default: the '
                                 "index's model)")


def _run(args) -> int:
    from .._optional import require

    for module in ('fastapi', 'uvicorn', 'orjson'):
        require(module, 'serve', 'ruclip serve')
    from ..serve import create_app
    from ..serve.server import listening_socket, run

    if args.max_wait_ms < 0:
        raise UsageError(f'--max-wait-ms must be 0 or more, got {args.max_wait_ms}')
    if not 0 <= args.port <= 65535:
        raise UsageError(f'--port must be between 0 and 65535, got {args.port}')
    options = dict(host=args.host, allowed_hosts=args.allowed_host, api_key=args.api_key, allow_urls=args.allow_urls,
                   cors=args.cors, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.queue)
    if args.index is None and args.model is not None:
        args.backend, args.dtype = args.backend or 'auto', args.dtype or 'auto'
        app, what = create_app(load_predictor(args), model_name=args.model, **options), args.model
    else:
        if args.index is None and not os.path.isfile(default_index()):
            raise UsageError(f'no index at {default_index()}: give --model NAME to serve the API alone, or --index '
                             f'INDEX (build one with `ruclip index FOLDER`)')
        index = open_index(args)
        app, what = create_app(index=index, **options), index.path
    if not _loopback(args.host) and not args.api_key:
        print(f'ruclip serve: warning: listening on {args.host} without --api-key: anyone who can reach this '
              f'machine can use the model{" and see the indexed photos" if args.index or not args.model else ""}',
              file=sys.stderr)
    try:
        sock = listening_socket(args.host, args.port)
    except OSError as error:
        raise UsageError(f'cannot listen on {args.host}:{args.port}: {error.strerror or error}') from None
    host, port = sock.getsockname()[:2]
    shown = f'[{host}]' if ':' in host else host
    print(f'serving {what} at http://{shown}:{port}/ (Ctrl-C stops)', flush=True)
    with _request_log(args.quiet):
        run(app, sock)
    return 0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip('[]')).is_loopback
    except ValueError:
        return host.lower() in LOOPBACK


@contextmanager
def _request_log(quiet: bool):
    """Request lines ('ruclip.serve' at INFO) on stderr while serving, unless quiet."""
    logger = logging.getLogger('ruclip.serve')
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter('%(asctime)s ruclip serve: %(message)s'))
    saved = logger.level, logger.propagate
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


COMMANDS = {'serve': Command(_arguments, _run)}
