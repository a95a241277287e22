"""The `ruclip` command line (also `python -m ruclip`).

To add a subcommand, write a commands.Command (its options and its run) and list it in COMMANDS.
"""
import argparse
import logging
import os
import sys
from contextlib import contextmanager
from typing import List, Optional

from tqdm.auto import tqdm

from . import commands, export_commands
from .commands import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_SKIPPED, EXIT_USAGE

COMMANDS = [commands.MODELS_COMMAND, commands.CLASSIFY_COMMAND, commands.RANK_COMMAND, commands.EMBED_COMMAND,
            export_commands.EXPORT_ONNX_COMMAND, export_commands.EXPORT_HF_COMMAND]


def exit_codes(reads_images: bool = True) -> str:
    """The --help epilog: the exit codes a command can return."""
    codes = [(EXIT_OK, 'done')]
    if reads_images:
        codes.append((EXIT_SKIPPED, 'done, but some image files could not be read: each is named on stderr and\n'
                                    'left out'))
    codes += [
        (EXIT_USAGE, 'bad usage or input: unknown option or model, missing file or checkpoint (or a model\n'
                     'neither cached nor downloadable), no image found or none readable, empty labels or\n'
                     'captions, bad --out'),
        (EXIT_FAILED, 'any other failure: an error from the Hub, out of memory, a stdout that cannot\n'
                      'encode the results, ...'),
        (EXIT_BROKEN_PIPE, 'stdout closed early (e.g. piped into head): the rest of the output is dropped'),
    ]
    return 'exit codes:\n' + '\n'.join(f'  {code:<3}  ' + text.replace('\n', '\n' + ' ' * 7) for code, text in codes)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog='ruclip', description='RuCLIP: Russian CLIP from the command line.', epilog=exit_codes(),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='version', version=f'ruclip {__version__}')
    subparsers = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for command in COMMANDS:
        subparser = subparsers.add_parser(command.name, help=command.help, description=command.help,
                                          epilog=exit_codes(command.reads_images),
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
        command.arguments(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run `ruclip ARGV...` and return its exit code (argparse exits with 2 on bad usage itself)."""
    args = build_parser().parse_args(argv)
    with _log_to_stderr():
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
        except (commands.UsageError, FileNotFoundError, ValueError) as error:
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
