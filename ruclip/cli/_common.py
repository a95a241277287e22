"""What the commands share: the Command type, exit codes, common options, output to stdout.

A command's run(args) prints its results to stdout and returns an exit code; it raises UsageError
(or FileNotFoundError / ValueError) for input the user has to fix. Nothing here imports torch, so
`ruclip --help` does not either.
"""
import argparse
import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, List, Optional, Sequence

DEFAULT_MODEL = 'ruclip-vit-base-patch32-384'

# The exit codes, for scripts; --help and the README explain them with these words.
EXIT_OK = 0
EXIT_SKIPPED = 1
EXIT_USAGE = 2
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130  # what a shell reports for SIGINT
EXIT_BROKEN_PIPE = 141  # what a shell reports for SIGPIPE
EXIT_CODES = {
    EXIT_OK: 'done',
    EXIT_SKIPPED: 'done, but some image files or folders could not be read: each is named on stderr and left out',
    EXIT_USAGE: 'bad usage or input: unknown option or model, missing file or checkpoint (or a model neither '
                'cached nor downloadable), no image found or none readable, empty labels or captions, bad --out',
    EXIT_FAILED: 'any other failure: an error from the Hub, out of memory, a full disk, a stdout that cannot '
                 'encode the results, ...',
    EXIT_INTERRUPTED: 'interrupted (Ctrl-C); no partial output file is left',
    EXIT_BROKEN_PIPE: 'stdout closed early (e.g. piped into head): the rest of the output is dropped',
}


class UsageError(Exception):
    """Input the user has to fix: exit code 2."""


@dataclass(frozen=True)
class Command:
    arguments: Callable[[argparse.ArgumentParser], None]  # adds the command's options
    run: Callable[[argparse.Namespace], int]  # does the work, returns the exit code
    reads_images: bool = False  # may skip unreadable image files (exit code 1)


# ---- shared options and helpers ------------------------------------------------------------------

AUTO_BACKEND = "OpenVINO when it is installed (pip install 'ruclip[openvino]') and the device is the CPU, else PyTorch"
AUTO_DTYPE = ('the fastest that keeps the documented accuracy: on OpenVINO int8 where its latents reach the cosine '
              'gate, else bf16 where the CPU has bf16 units, else fp32; on PyTorch bf16 where the device computes it '
              'natively, else fp32')
OTHER_DTYPES = 'fp32, bf16, fp16 (PyTorch), int8 (OpenVINO)'
BACKEND_HELP = f'auto (default): {AUTO_BACKEND}; torch; openvino'
DTYPE_HELP = f'auto (default): {AUTO_DTYPE}. Or {OTHER_DTYPES}'


def add_model_options(parser: argparse.ArgumentParser, *, model_default: Optional[str] = DEFAULT_MODEL,
                      model_help: Optional[str] = None, backend_default: Optional[str] = 'auto',
                      backend_help: str = BACKEND_HELP, dtype_default: Optional[str] = 'auto',
                      dtype_help: str = DTYPE_HELP, batch_size: bool = True):
    """--model, --cache-dir, --device, --backend, --dtype, --batch-size (unless batch_size=False) and
    --quiet: the options of a command that runs the model; the defaults (and their help) may be the
    command's own. `ruclip models` says what --backend auto --dtype auto run on this machine."""
    group = add_checkpoint_options(parser, model_default, model_help)
    group.add_argument('--device', type=_device, help='cpu, cuda, cuda:1, ... (default: cuda if available)')
    group.add_argument('--backend', choices=['torch', 'openvino', 'auto'], default=backend_default, help=backend_help)
    group.add_argument('--dtype', choices=['fp32', 'bf16', 'fp16', 'int8', 'auto'], default=dtype_default,
                       help=dtype_help)
    if batch_size:
        group.add_argument('--batch-size', type=positive_int, default=None, metavar='N',
                           help='images per forward pass (default: chosen for the device)')
    add_quiet_option(group)


def add_checkpoint_options(parser: argparse.ArgumentParser, model_default: Optional[str] = DEFAULT_MODEL,
                           model_help: Optional[str] = None):
    """--model and --cache-dir, in a 'model options' group, which is returned."""
    group = parser.add_argument_group('model options')
    group.add_argument('--model', default=model_default, metavar='NAME_OR_FOLDER',
                       help=model_help or f'a model of `ruclip models` or a checkpoint folder (default: {DEFAULT_MODEL})')
    add_cache_dir(group)
    return group


def add_quiet_option(parser):
    parser.add_argument('-q', '--quiet', action='store_true', help='no progress bars')


@contextmanager
def quiet_libraries(quiet: bool) -> Iterator[None]:
    """With --quiet, no progress bars or log lines from the libraries a command runs: the Hub client's
    downloads and NNCF's int8 builds (ruclip's own bars follow --quiet where they are made)."""
    if not quiet:
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    from ..backends._int8 import without_nncf_output

    disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        with without_nncf_output():
            yield
    finally:
        if not disabled:
            enable_progress_bars()


def add_cache_dir(parser):
    parser.add_argument('--cache-dir', metavar='FOLDER', help='the Hugging Face cache to use (default: the standard one)')


def load_predictor(args: argparse.Namespace, templates: Optional[Sequence[str]] = None, jpeg_draft: bool = False):
    """The Predictor the model options ask for (jpeg_draft: Predictor's, for the photo-indexing commands)."""
    from ..predictor import Predictor

    clip, processor, device = load_model(args)
    return Predictor(clip, processor, device, templates=templates, bs=args.batch_size, quiet=args.quiet,
                     jpeg_draft=jpeg_draft)


def add_exact_decode_option(parser):
    parser.add_argument('--exact-decode', action='store_true',
                        help='decode large JPEGs at full size (default: at a reduced scale, both sides at least twice '
                             "the model's input side: about twice as fast on phone photos, latents at cosine ~0.99 "
                             'to the exact ones; recorded with the model, so an index or shard folder never mixes both)')


def load_model(args: argparse.Namespace):
    """(clip, processor, device): ruclip.load with the model options (--device default: cuda if available)."""
    from ..pretrained import load

    device = model_device(args)
    clip, processor = load(args.model, device=device, cache_dir=args.cache_dir, dtype=args.dtype,
                           backend=args.backend)
    return clip, processor, device


def model_folders(args: argparse.Namespace) -> List[str]:
    """--model when it names a checkpoint folder, as a list: what no output may be written into (see
    _outputs.check_not_input); a model by name lives in the Hugging Face cache, which no output enters."""
    model = getattr(args, 'model', None)
    return [model] if model and os.path.isdir(model) else []


def model_device(args: argparse.Namespace):
    """--device, else cuda when available, else the CPU; a UsageError for cuda without CUDA."""
    import torch

    device = args.device or torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise UsageError(f'--device {device}: CUDA is not available on this machine; use --device cpu')
    return device


def positive_int(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise argparse.ArgumentTypeError(f'expected a positive integer, got {value!r}')
    return int(value)


def _device(value: str):
    import torch  # only once a command that runs the model is parsed

    try:
        return torch.device(value)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"expected a torch device such as cpu, cuda or cuda:1, got {value!r}") from None


def print_json(value):
    """JSON on stdout in UTF-8 whatever the locale's encoding; file names that are not UTF-8 (their
    bytes kept by Python as surrogate escapes) are written back as the bytes they were."""
    text = json.dumps(value, ensure_ascii=False, indent=2) + '\n'
    binary = getattr(sys.stdout, 'buffer', None)
    if binary is None:  # a text-only stream (io.StringIO, some notebook kernels): it takes str
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    write_all(binary, text.encode('utf-8', errors='surrogateescape'))
    binary.flush()


def write_all(stream, data: bytes) -> None:
    """Write every byte of data to a binary stream, whose write may take fewer (a pipe): a stream
    that takes none raises BrokenPipeError rather than drop the rest silently."""
    view = memoryview(data)
    while view:
        written = stream.write(view)
        if written is None:  # a buffered stream that took it all
            return
        if written == 0:
            raise BrokenPipeError('stdout took no more bytes')
        view = view[written:]


def print_table(header: List[str], rows: List[List[str]]):
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def exit_code(skipped, total: int) -> int:
    """Exit code 1 and a count on stderr when files or folders were skipped (each was named as it
    happened); `total` counts the image files found."""
    if not skipped:
        return EXIT_OK
    folders = sum(1 for path, _ in skipped if os.path.isdir(path))
    files = len(skipped) - folders
    counts = [f'{files} of {total} image files'] if files else []
    counts += [f'{folders} folder{"s" if folders > 1 else ""}'] if folders else []
    print(f'ruclip: skipped {" and ".join(counts)} that could not be read', file=sys.stderr)
    return EXIT_SKIPPED


def skipped_json(skipped):
    return [dict(file=path, reason=reason) for path, reason in skipped]


def clean(values: Sequence[str], what: str) -> List[str]:
    values = [value.strip() for value in values]
    if not all(values):
        raise UsageError(f'{what} must not be empty or blank, got {values!r}')
    return values
