"""MkDocs hook: the command-line reference, generated from ruclip.cli's own parsers at every build.

A page holding the marker `<!-- cli-reference -->` gets, in its place, one section per command (and per
subcommand, e.g. `ruclip eval zeroshot`) with the text its `--help` prints; `<!-- exit-codes -->` becomes
the table of ruclip.cli._common.EXIT_CODES. Nothing is copied by hand, so the page cannot drift from
the code: a renamed option shows renamed on the next build.
"""
import argparse
import os
from contextlib import contextmanager

CLI_MARKER = '<!-- cli-reference -->'
EXIT_CODES_MARKER = '<!-- exit-codes -->'
HELP_WIDTH = '100'  # argparse wraps --help at $COLUMNS: fixed, so the page does not depend on the terminal


def on_page_markdown(markdown, page, config, files):
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if EXIT_CODES_MARKER in markdown:
        markdown = markdown.replace(EXIT_CODES_MARKER, exit_codes_table())
    return markdown


def cli_reference() -> str:
    """Markdown: `ruclip --help`, then each command's --help under a heading `ruclip NAME`."""
    from ruclip.cli import build_parser

    with help_width():
        parser = build_parser()
        sections = [help_section('ruclip', parser, level=2)]
        sections += [help_section(f'ruclip {name}', sub, level=2, nested=True) for name, sub in subcommands(parser)]
    return '\n'.join(sections)


def help_section(title: str, parser: argparse.ArgumentParser, level: int, nested: bool = False) -> str:
    text = f"{'#' * level} `{title}`\n\n```text\n{parser.format_help().rstrip()}\n```\n"
    if nested:
        for name, sub in subcommands(parser):
            text += '\n' + help_section(f'{title} {name}', sub, level + 1, nested=True)
    return text


def subcommands(parser: argparse.ArgumentParser):
    """(name, parser) of each subcommand of `parser`, in the order they were added."""
    for action in parser._actions:  # argparse has no public way to list subparsers
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def exit_codes_table() -> str:
    from ruclip.cli._common import EXIT_CODES

    rows = [f'| {code} | {meaning.replace("|", "&#124;")} |' for code, meaning in EXIT_CODES.items()]
    return '\n'.join(['| code | meaning |', '|---|---|'] + rows) + '\n'


@contextmanager
def help_width():
    saved = os.environ.get('COLUMNS')
    os.environ['COLUMNS'] = HELP_WIDTH
    try:
        yield
    finally:
        if saved is None:
            del os.environ['COLUMNS']
        else:
            os.environ['COLUMNS'] = saved
