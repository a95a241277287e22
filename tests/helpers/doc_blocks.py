"""The code blocks of README.md and the docs pages, found by page and heading, for the tests that run them.

A section is the text under a heading (any level) up to the next heading of the same or a higher
level, so a `## Page section` includes its `###` subsections. Lines inside fenced code blocks are never
taken for headings (a bash block's `#SBATCH` or comment is not one).
"""
import re
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / 'README.md'
DOCS = ROOT / 'docs'

_HEADING = re.compile(r'(#{1,6}) (.*)')
_FENCE = re.compile(r'```(\w*)')


def section(page: Path, heading: Optional[str] = None) -> str:
    """The text of `page` under the heading whose text is `heading` (the whole page when None).

    Raises:
        LookupError: the page has no such heading, naming the headings it has.
    """
    lines = page.read_text(encoding='utf-8').splitlines(keepends=True)
    if heading is None:
        return ''.join(lines)
    headings, fenced = [], False
    for number, line in enumerate(lines):
        if line.startswith('```'):
            fenced = not fenced
        elif not fenced and (match := _HEADING.fullmatch(line.rstrip('\n'))):
            headings.append((number, len(match.group(1)), match.group(2).strip()))
    for position, (number, level, text) in enumerate(headings):
        if text == heading:
            end = next((n for n, other_level, _ in headings[position + 1:] if other_level <= level), len(lines))
            return ''.join(lines[number + 1:end])
    raise LookupError(f'{page.name} has no heading {heading!r}; its headings: {[text for _, _, text in headings]}')


def code_blocks(page: Path, heading: Optional[str] = None, language: str = 'python') -> List[str]:
    """The fenced code blocks in `language` under `heading` of `page`, in order."""
    blocks, current = [], None
    for line in section(page, heading).splitlines(keepends=True):
        if current is None:
            match = _FENCE.match(line)
            if match:
                current = [] if match.group(1) == language else False
        elif line.startswith('```'):
            if current is not False:
                blocks.append(''.join(current))
            current = None
        elif current is not False:
            current.append(line)
    return blocks


def command_lines(page: Path, heading: Optional[str] = None) -> List[str]:
    """The non-empty, non-comment lines of the bash blocks under `heading` of `page`."""
    return [line for block in code_blocks(page, heading, 'bash') for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith('#')]
