"""What the commands that read a search index share: where the index is, its options, opening it
with the model it was built with (`ruclip index`, `search`, `serve`, `duplicates`, `tag`)."""
import os

from ._common import AUTO_BACKEND, AUTO_DTYPE, DEFAULT_MODEL, OTHER_DTYPES, UsageError, add_model_options, load_predictor


def default_index() -> str:
    """$RUCLIP_INDEX, else $XDG_DATA_HOME/ruclip/images.ruclip-index (~/.local/share/... by default)."""
    if os.environ.get('RUCLIP_INDEX'):
        return os.environ['RUCLIP_INDEX']
    data = os.environ.get('XDG_DATA_HOME') or os.path.join(os.path.expanduser('~'), '.local', 'share')
    return os.path.join(data, 'ruclip', 'images.ruclip-index')


def index_options(parser, batch_size: bool = True):
    """--index and the model options of a command that reads an index."""
    parser.add_argument('--index', metavar='PATH', default=None,
                        help='the index file (default: $RUCLIP_INDEX or ~/.local/share/ruclip/images.ruclip-index)')
    add_model_options(parser, model_default=None, backend_default=None, dtype_default=None, batch_size=batch_size,
                      model_help=f'a model of `ruclip models` or a checkpoint folder (default: the model the index '
                                 f'was built with; for a new index {DEFAULT_MODEL})',
                      backend_help=f"the model's backend (default: the index's; for a new index auto: {AUTO_BACKEND}); "
                                   f"torch; openvino",
                      dtype_help=f"the model's dtype (default: the index's when the backend is too, else auto: "
                                 f"{AUTO_DTYPE}). Or {OTHER_DTYPES}")


def open_index(args, create: bool = False):
    """The ImageIndex of --index, its model loaded from --model (default: the index's own) when first needed."""
    from ..search import ImageIndex
    from ..identity import OPTION_DTYPES

    path = args.index or default_index()
    if not create and not os.path.isfile(path):
        raise UsageError(f'no index at {path}: build one first with `ruclip index FOLDER --index {path}`')
    if create and args.index is None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with ImageIndex(path) as existing:
        recorded = existing.model
    named, backend, dtype = args.model, args.backend, args.dtype
    args.model = named or (recorded['name'] if recorded else DEFAULT_MODEL)
    args.batch_size = getattr(args, 'batch_size', None)
    recorded_backend = recorded.get('backend', 'torch') if recorded else None
    args.backend = backend or recorded_backend or 'auto'
    same_backend = recorded and args.backend == recorded_backend
    args.dtype = dtype or (recorded['dtype'] if same_backend else 'auto')
    exact_decode = getattr(args, 'exact_decode', False)
    # JPEG draft decoding for a new index unless --exact-decode; one started from imported latents decodes as the
    # model that made them did; an existing index keeps what it was filled with
    imports = _imports(args)
    if recorded:
        jpeg_draft = not exact_decode and bool(recorded.get('jpeg_draft'))
    else:
        jpeg_draft = not exact_decode and (_decoded_in_draft(imports[0]) if imports else True)
    index = ImageIndex(path, lambda: load_predictor(args, jpeg_draft=jpeg_draft), model_name=args.model)
    if recorded:  # an update that embeds nothing still loads the model to check it when the options name another
        recorded_dtype = OPTION_DTYPES.get(recorded['dtype'], recorded['dtype'])
        index.check_model = bool(named and named != recorded['name'] or backend and not same_backend
                                 or dtype and dtype != recorded_dtype or exact_decode and recorded.get('jpeg_draft'))
    return index


def _imports(args) -> list:
    """(source, layout) of each --from-embeddings and --from-clip-retrieval, in that order."""
    return ([(source, 'ruclip-embed') for source in getattr(args, 'from_embeddings', None) or []]
            + [(source, 'clip-retrieval') for source in getattr(args, 'from_clip_retrieval', None) or []])


def _decoded_in_draft(source: tuple) -> bool:
    """Whether the model an imported source records decoded JPEGs in draft mode (False when it records none:
    `ruclip embed --out FILE` and clip-retrieval decode exactly)."""
    from ..search.importers import recorded_model

    identity, _ = recorded_model(*source)
    return bool(identity and identity.get('jpeg_draft'))
