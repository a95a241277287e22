"""The `ruclip` command line (also `python -m ruclip`).

To add a subcommand, write a commands.Command (its options and its run) and list it in COMMANDS.
"""
import argparse
import logging
import sys
from contextlib import contextmanager
from typing import List, Optional

from tqdm.auto import tqdm

from . import commands, export_commands

COMMANDS = [commands.MODELS, commands.CLASSIFY, commands.RANK, commands.EMBED,
            export_commands.EXPORT_ONNX, export_commands.EXPORT_HF]
EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 3, 130
EXIT_CODES = """exit codes:
  0  done
  1  done, but some image files could not be read: each is named on stderr and left out
  2  bad usage or input: unknown option or model, missing file or checkpoint (or a model neither
     cached nor downloadable), no image found or none readable, empty labels or captions
  3  any other failure: an error from the Hub, out of memory, ..."""


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog='ruclip', description='RuCLIP: Russian CLIP from the command line.', epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='version', version=f'ruclip {__version__}')
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for command in COMMANDS:
        subparser = subparsers.add_parser(command.name, help=command.help, description=command.help,
                                          epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
        command.arguments(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run `ruclip ARGV...` and return its exit code (argparse exits with 2 on bad usage itself)."""
    args = build_parser().parse_args(argv)
    with _log_to_stderr():
        try:
            return args.run(args)
        except KeyboardInterrupt:
            print('ruclip: interrupted', file=sys.stderr)
            return EXIT_INTERRUPTED
        except (commands.UsageError, FileNotFoundError, ValueError) as error:
            print(f'ruclip {args.command}: error: {error}', file=sys.stderr)
            return EXIT_USAGE
        except Exception as error:  # noqa: BLE001 - a command line reports, it does not dump a traceback
            print(f'ruclip {args.command}: failed: {type(error).__name__}: {error}', file=sys.stderr)
            return EXIT_FAILED


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
