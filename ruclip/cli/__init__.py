"""The `ruclip` command line (also `python -m ruclip`).

COMMANDS is the one table of subcommands: each row names the module of ruclip.cli that defines it
(in its own COMMANDS dict: options, run, exit codes) and is imported only when that command runs,
so `ruclip --help` and `ruclip --version` start without importing torch. Exit codes are defined and
explained in _common.EXIT_CODES.
"""
import argparse
import importlib
import logging
import os
import sys
import textwrap
import warnings
from contextlib import contextmanager

from tqdm.auto import tqdm
from typing import List, Optional

from ._common import (EXIT_BROKEN_PIPE, EXIT_CODES, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_SKIPPED,
                      EXIT_USAGE, Command, UsageError, quiet_libraries)

# name, module, one-line help
COMMANDS = [
    ('models', 'models', 'the six models, their sizes, whether each is cached here'),
    ('classify', 'predict', 'top-k labels with probabilities for each image'),
    ('rank', 'predict', 'captions ranked for each image and images for each caption'),
    ('embed', 'embed', 'image latents to a .npy or .npz file, or to resumable shards (local, SLURM, Ray)'),
    ('export-onnx', 'export', 'ONNX files of the image and text towers, for onnxruntime'),
    ('export-hf', 'export', 'a transformers CLIPModel folder, for from_pretrained and pipelines'),
    ('eval', 'evaluate', 'zero-shot, linear-probe and retrieval benchmarks, the Russian scoreboard; reports beside '
                          'the published tables'),
    ('index', 'search', 'add image folders to a search index, or update it (only new and changed files)'),
    ('search', 'search', 'images of an index most like a Russian text, an example image, or a weighted mix'),
    ('serve', 'serve', 'an OpenAI-compatible embeddings API, and the search page of an index, over HTTP'),
    ('duplicates', 'photos', 'groups of near-identical photos in an index (copies, re-saves, bursts), the one to keep'),
    ('tag', 'photos', 'Russian tags for every photo of an index, from its stored latents'),
    ('finetune', 'finetune', 'fine-tune a model on your image-caption pairs or classes (full, LiT, LoRA; torchrun)'),
]


def command(name: str) -> Command:
    """The Command called `name`, its module imported now."""
    module = next(module for command_name, module, _ in COMMANDS if command_name == name)
    return importlib.import_module(f'{__name__}.{module}').COMMANDS[name]


def exit_codes(reads_images: bool = True) -> str:
    """The --help epilog: the exit codes a command can return."""
    codes = [code for code in EXIT_CODES if reads_images or code != EXIT_SKIPPED]
    return 'exit codes:\n' + '\n'.join(textwrap.fill(EXIT_CODES[code], 100, initial_indent=f'  {code:<3}  ',
                                                       subsequent_indent=' ' * 7) for code in codes)


def build_parser(argv: Optional[List[str]] = None) -> argparse.ArgumentParser:
    """The parser; given argv, only the subcommand it names gets its options (and its module imported)."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog='ruclip', description='RuCLIP: Russian CLIP from the command line.', epilog=exit_codes(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='version', version=f'ruclip {__version__}')
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    chosen = None if argv is None else next((arg for arg in argv if not arg.startswith('-')), None)
    for name, _, help in COMMANDS:
        if argv is not None and name != chosen:
            subparsers.add_parser(name, help=help)
            continue
        spec = command(name)
        subparser = subparsers.add_parser(name, help=help, description=help, epilog=exit_codes(spec.reads_images),
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
        spec.arguments(subparser)
        subparser.set_defaults(run=spec.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run `ruclip ARGV...` and return its exit code (argparse exits with 2 on bad usage itself)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    with _log_to_stderr(), warnings.catch_warnings(), quiet_libraries(getattr(args, 'quiet', False)):
        # images over PIL.Image.MAX_IMAGE_PIXELS are skipped with a line of ours; not PIL's warning too
        warnings.filterwarnings('ignore', message=r'Image size \(\d+ pixels\) exceeds limit')
        try:
            code = args.run(args)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return code
        except KeyboardInterrupt:
            print('ruclip: interrupted', file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        except UnicodeEncodeError as error:
            hint = 'set PYTHONIOENCODING=utf-8'
            if not getattr(args, 'json', False):
                hint += ' or use --json, which is always UTF-8'
            print(f'ruclip {args.command}: failed: stdout ({error.encoding}) cannot show the results: {error.reason} '
                  f'{error.object[error.start:error.end]!r}; {hint}', file=sys.stderr)
            return EXIT_FAILED
        except (UsageError, FileNotFoundError, ValueError) as error:
            print(f'ruclip {args.command}: error: {error}', file=sys.stderr)
            return EXIT_USAGE
        except Exception as error:  # noqa: BLE001 - a command line reports, it does not dump a traceback
            print(f'ruclip {args.command}: failed: {type(error).__name__}: {error}', file=sys.stderr)
            return EXIT_FAILED


def _silence_stdout():
    """Point stdout at /dev/null, so the interpreter's last flush does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture): nothing to flush at exit
        pass


class _TqdmHandler(logging.Handler):
    """Log lines on stderr that do not break a running progress bar."""

    def emit(self, record):
        tqdm.write(self.format(record), file=sys.stderr)


@contextmanager
def _log_to_stderr():
    """The 'ruclip' logger's warnings (skipped files) as 'ruclip: ...' lines, for one command."""
    logger = logging.getLogger('ruclip')
    handler = _TqdmHandler(logging.WARNING)
    handler.setFormatter(logging.Formatter('ruclip: %(message)s'))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
