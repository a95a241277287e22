"""Queries: Russian texts, example images and weighted sums of them, as one unit latent.

The command line's syntax, one term per argument:
  TERM           weight 1
  W:TERM         weight W, a number such as 2, 0.5 or -1 ("2:кошка", "-0.5:./диван.jpg")
  -TERM          weight -1 (after `--`, so that the shell's argument parser leaves it alone)
A term that is the path of an existing file is that image, whole (so a file named "2:кошка" is an
image, not the text "кошка" with weight 2); otherwise TERM is a text, unless it looks like a path
(has a / or an image file extension), which is an error naming the missing file. `text:TERM` and
`image:TERM` say which it is outright. The query latent is the normalised weighted sum of the
terms' unit latents.
"""
import os
import re
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

WEIGHT = re.compile(r'^([+-]?(?:\d+\.?\d*|\.\d+)):(.*)$', re.S)


@dataclass(frozen=True)
class Term:
    """One part of a query: a text (str) or an image (path, bytes or PIL image) and its weight."""
    value: object
    weight: float = 1.0
    is_image: bool = False


def parse_terms(arguments: Sequence[str]) -> List[Term]:
    """The command line's QUERY arguments (see the module's doc) as Terms."""
    from ..image_files import image_extensions

    terms = []
    for argument in arguments:
        weight, body = 1.0, argument
        if not os.path.isfile(argument):
            match = WEIGHT.match(argument)
            if match:
                weight, body = float(match.group(1)), match.group(2)
            elif argument.startswith(('-', '+')) and len(argument) > 1:
                weight, body = (-1.0 if argument[0] == '-' else 1.0), argument[1:]
        if body.startswith('text:'):
            terms.append(Term(_text(body[5:], argument), weight))
        elif body.startswith('image:') or os.path.isfile(body):
            path = body[6:] if body.startswith('image:') and not os.path.isfile(body) else body
            if not os.path.isfile(path):
                raise FileNotFoundError(f'query {argument!r}: no such image file: {path}')
            terms.append(Term(path, weight, is_image=True))
        elif '/' in body or os.sep in body or os.path.splitext(body)[1].lower() in image_extensions():
            raise FileNotFoundError(f'query {argument!r}: no such image file: {body} (to search for it as '
                                    f'a text, write text:{body})')
        else:
            terms.append(Term(_text(body, argument), weight))
    if not terms:
        raise ValueError('the query is empty: give a text, an image file, or both')
    return terms


def as_terms(query) -> List[Term]:
    """ImageIndex.search's query: a str (a text), a path, bytes, a PIL image, a Term, or a list of
    them or of (value, weight) pairs. Strings here are texts, never parsed for weights or paths."""
    from PIL import Image

    items = query if isinstance(query, list) else [query]
    terms = []
    for item in items:
        weight = 1.0
        if isinstance(item, tuple) and len(item) == 2:
            item, weight = item
        if isinstance(item, Term):
            terms.append(item)
        elif isinstance(item, str):
            terms.append(Term(_text(item, item), float(weight)))
        elif isinstance(item, (os.PathLike, bytes, bytearray, memoryview, Image.Image)):
            terms.append(Term(os.fspath(item) if isinstance(item, os.PathLike) else item, float(weight), True))
        else:
            raise TypeError(f'a query is a text, an image (path, bytes, PIL image) or a list of them, '
                            f'got {type(item).__name__}')
    if not terms:
        raise ValueError('the query is empty: give a text, an image, or both')
    return terms


def query_latent(predictor, terms: List[Term], templates: bool = True) -> np.ndarray:
    """[dim] float32 unit vector: sum of weight x unit latent over terms, normalised."""
    if not all(np.isfinite(term.weight) for term in terms):
        raise ValueError(f'query weights must be finite numbers, got {[term.weight for term in terms]}')
    texts = [term for term in terms if not term.is_image]
    images = [term for term in terms if term.is_image]
    latents = []
    if texts:
        encode = predictor.get_text_latents if templates else predictor.get_caption_latents
        latents.append(encode([term.value for term in texts]).float().cpu().numpy())
    if images:
        from ..image import open_image
        decoded = [open_image(term.value) for term in images]  # an unreadable one raises, naming it
        latents.append(predictor.get_image_latents(decoded, progress=False).float().cpu().numpy())
    weights = np.array([term.weight for term in texts + images], dtype=np.float32)
    total = weights @ np.concatenate(latents)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise ValueError('the query\'s weighted terms cancel out (their sum is zero): change a weight')
    return (total / norm).astype(np.float32)


def _text(text: str, argument: str) -> str:
    if not text.strip():
        raise ValueError(f'query text {argument!r} is empty or blank: give words to search for')
    return text
