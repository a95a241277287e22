"""Russian tags for every photo of an index, scored from the stored latents against a vocabulary.

The vocabulary is a UTF-8 text file (the shipped one: vocabulary/ru.txt beside this module):
    # a comment
    template: фото, на котором изображено {}     one line per template (default: Predictor's)
    кошка                                        a tag, its own text in the templates
    море = морской пейзаж                        a tag and the text that stands for it
A user's file in this format replaces the shipped one (`ruclip tag --vocabulary FILE`).

Scores: each photo's cosine to every tag's text latent (the templates averaged, as zero-shot
classification does), times TAG_LOGIT_SCALE, softmaxed over the vocabulary: a probability that
the photo shows that tag rather than another of the vocabulary. A photo keeps the tags of
probability >= the threshold (DEFAULT_THRESHOLD), at most MAX_TAGS of them, best first. The
threshold is a probability, so it means the same for every model; whether it suits real photos
has to be checked with real weights (none were available when it was chosen; see docs/photos.md).
"""
import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .database import has_tables, immediate

TAG_LOGIT_SCALE = 100.0  # CLIP's trained logit scale (clamped at 100 in training; ruCLIP's is at it)
DEFAULT_THRESHOLD = 0.1
MAX_TAGS = 5
ROWS_PER_PASS = 65536


@dataclass(frozen=True)
class Vocabulary:
    tags: List[str]  # as stored and searched (--tag)
    texts: List[str]  # what each tag is in the templates
    templates: Optional[List[str]]  # None: the predictor's

    @property
    def digest(self) -> str:
        described = json.dumps([self.tags, self.texts, self.templates], ensure_ascii=False)
        return hashlib.blake2b(described.encode(), digest_size=8).hexdigest()


def shipped_vocabulary_path() -> str:
    return str(resources.files(__package__).joinpath('vocabulary', 'ru.txt'))


def read_vocabulary(path: Optional[Union[str, os.PathLike]] = None) -> Vocabulary:
    """The vocabulary in `path` (default: the shipped Russian one); ValueError naming the file and
    line of anything wrong."""
    path = os.fspath(path) if path is not None else shipped_vocabulary_path()
    try:
        with open(path, encoding='utf-8') as file:
            lines = file.read().splitlines()
    except OSError as error:
        raise ValueError(f'cannot read the tag vocabulary {path}: {error.strerror or error}') from None
    except UnicodeDecodeError as error:
        raise ValueError(f'the tag vocabulary {path} is not UTF-8 text: {error}') from None
    tags, texts, templates = [], [], []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('template:'):
            template = line[len('template:'):].strip()
            if template.count('{}') != 1:
                raise ValueError(f'{path}, line {number}: a template holds {{}} once, where the tag goes; '
                                 f'got {template!r}')
            templates.append(template)
            continue
        tag, _, text = (part.strip() for part in line.partition('='))
        if not tag or (_ and not text):
            raise ValueError(f'{path}, line {number}: expected TAG or TAG = TEXT, got {line!r}')
        if tag in tags:
            raise ValueError(f'{path}, line {number}: the tag {tag!r} is listed twice')
        tags.append(tag)
        texts.append(text or tag)
    if len(tags) < 2:
        raise ValueError(f'the tag vocabulary {path} has {len(tags)} tags; tags are scored against each other, '
                         f'so give at least 2')
    return Vocabulary(tags, texts, templates or None)


def score(latents: np.ndarray, text_latents: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
          max_tags: int = MAX_TAGS) -> List[List[tuple]]:
    """For each row of latents [n, dim] (unit), its (tag position, probability) pairs of probability
    >= threshold, best first, at most max_tags: softmax over text_latents [tags, dim] of
    TAG_LOGIT_SCALE x cosine."""
    logits = TAG_LOGIT_SCALE * (np.asarray(latents, np.float32) @ np.asarray(text_latents, np.float32).T)
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)  # [n, tags]
    chosen = []
    for row in probabilities:
        best = np.argsort(-row, kind='stable')[:max_tags]
        chosen.append([(int(position), float(row[position])) for position in best if row[position] >= threshold])
    return chosen


def tag_index(index, vocabulary: Optional[Vocabulary] = None, threshold: float = DEFAULT_THRESHOLD,
              max_tags: int = MAX_TAGS) -> int:
    """Tag every photo of an ImageIndex from its stored latents (no image is read; the model only
    encodes the vocabulary), replacing its tags in one transaction; returns the tag count stored."""
    if not 0 < threshold <= 1:
        raise ValueError(f'the tag threshold is a probability in (0, 1], got {threshold}')
    vocabulary = vocabulary or read_vocabulary()
    predictor = index.predictor  # the index's model, checked
    text_latents = predictor.get_text_latents(vocabulary.texts, templates=vocabulary.templates).float().cpu().numpy()
    with index._writing() as connection:
        stored = index._latents()
        rows = []
        for start in range(0, len(stored.ids), ROWS_PER_PASS):
            chunk = score(stored.latents[start:start + ROWS_PER_PASS], text_latents, threshold, max_tags)
            rows += [(int(row_id), vocabulary.tags[position], probability)
                     for row_id, pairs in zip(stored.ids[start:start + ROWS_PER_PASS], chunk)
                     for position, probability in pairs]
        settings = dict(vocabulary=vocabulary.digest, tags=len(vocabulary.tags), threshold=threshold,
                        max_tags=max_tags, logit_scale=TAG_LOGIT_SCALE)
        with immediate(connection):  # not transaction(): the generation stays, no latent changed
            connection.execute('DELETE FROM tags')
            connection.executemany('INSERT INTO tags VALUES (?, ?, ?)', rows)
            connection.execute('INSERT OR REPLACE INTO meta VALUES (?, ?)', ('tagging', json.dumps(settings)))
    return len(rows)


def clean_tags(tags: Sequence[str]) -> List[str]:
    """--tag values, stripped; ValueError for a blank one."""
    cleaned = [tag.strip() for tag in tags]
    if not all(cleaned):
        raise ValueError(f'--tag must not be empty or blank, got {list(tags)!r}')
    return cleaned


def ids_tagged(connection: sqlite3.Connection, tag: str) -> np.ndarray:
    if not has_tables(connection):
        return np.empty(0, np.int64)
    return np.array([row_id for row_id, in connection.execute('SELECT id FROM tags WHERE tag = ?', (tag,))],
                    dtype=np.int64)


def tag_counts(index) -> List[Tuple[str, int]]:
    """(tag, photos carrying it) of an ImageIndex, most used first (then by tag); [] when untagged."""
    if index._connection is None:
        return []
    with index._lock:
        if not has_tables(index._connection):
            return []
        return [(tag, count) for tag, count in index._connection.execute(
            'SELECT tag, COUNT(*) FROM tags WHERE id IN (SELECT id FROM images) GROUP BY tag '
            'ORDER BY COUNT(*) DESC, tag')]


def tags_of(connection: sqlite3.Connection, ids: Iterable[int]) -> Dict[int, List[str]]:
    """{id: its tags, best first} for the rows that have any."""
    ids = [int(row_id) for row_id in ids]
    found: Dict[int, List[str]] = {}
    if not has_tables(connection):
        return found
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for row_id, tag in connection.execute(
                f'SELECT id, tag FROM tags WHERE id IN ({",".join("?" * len(chunk))}) ORDER BY id, score DESC', chunk):
            found.setdefault(row_id, []).append(tag)
    return found
