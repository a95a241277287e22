"""Training pairs: image-caption tables, webdataset tars and ImageFolders of classes, read into
one form (Pairs) with a fingerprint of what they were read from.

Tables and tars are read by ruclip.distributed's readers, the ones `ruclip embed` uses (same
default column names, same relative paths, same failures). An ImageFolder's captions are its class
names put into templates ("finetune like you pretrain"); rows of one class are positives of each
other in the loss, as are rows of one caption in a table.
"""
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from ..image_files import find_images
from ..predictor import check_templates

logger = logging.getLogger('ruclip')
TABLE_SUFFIXES = ('.parquet', '.csv', '.jsonl')
URL_TIMEOUT = 10.0  # seconds per image URL of a table, fetched once before training


@dataclass
class Pairs:
    """Image-caption rows. images[i]: a file path or encoded bytes; groups[i]: rows of one group
    (one caption of a table, one class of a folder) are positives of each other.

    classes: the class names of an ImageFolder (groups index them), None for tables and tars; then
        each row's caption is templates[t].format(class name), t drawn per epoch (caption_of).
    captions: a table's or tar's caption of each row (None for an ImageFolder).
    skipped: (what, reason) of each row left out, in input order.
    """
    images: list
    groups: List[int]
    captions: Optional[List[str]] = None
    classes: Optional[List[str]] = None
    templates: Optional[List[str]] = None
    fingerprint: str = ''
    source: str = ''
    skipped: List[tuple] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def keep(self, rows: Sequence[int]) -> 'Pairs':
        """The pairs of `rows` only (in that order), the rest recorded as skipped by the caller."""
        return Pairs(images=[self.images[i] for i in rows], groups=[self.groups[i] for i in rows],
                     captions=None if self.captions is None else [self.captions[i] for i in rows],
                     classes=self.classes, templates=self.templates, fingerprint=self.fingerprint,
                     source=self.source, skipped=list(self.skipped))

    def caption_of(self, row: int, template: int = 0) -> str:
        """Row `row`'s caption; for class data, its class name in templates[template % len(templates)]."""
        if self.classes is None:
            return self.captions[row]
        return self.templates[template % len(self.templates)].format(self.classes[self.groups[row]].lower())


def read_pairs(paths: Sequence[str], *, templates: Optional[Sequence[str]] = None, image_column: Optional[str] = None,
               caption_column: Optional[str] = None, what: str = '--train') -> Pairs:
    """The pairs in `paths`: one folder (an ImageFolder: a subfolder of images per class), or
    .parquet/.csv/.jsonl tables, or webdataset .tar shards. Rows without an image or caption are
    skipped and named (on the 'ruclip' logger and in .skipped); a missing column, a missing file,
    an empty table or no usable row is a ValueError (or FileNotFoundError) naming it."""
    paths = [os.fspath(path) for path in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise ValueError(f'{what}: no data given: name a table (.parquet, .csv, .jsonl), .tar shards or a folder')
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f'{what}: no such file or folder: {path}')
    if len(paths) == 1 and os.path.isdir(paths[0]):
        pairs = _read_image_folder(paths[0], templates, what)
    elif all(path.lower().endswith(TABLE_SUFFIXES) for path in paths):
        pairs = _read_samples(paths, 'table', image_column, caption_column, what)
    elif all(path.lower().endswith('.tar') for path in paths):
        pairs = _read_samples(paths, 'tar', None, None, what)
    else:
        raise ValueError(f'{what}: expected one folder of class subfolders, or tables (.parquet, .csv, .jsonl), '
                         f'or .tar shards, got {paths}')
    if templates is not None and pairs.classes is None:
        raise ValueError(f'{what}: templates are for a folder of classes; {paths} holds captions')
    for name, reason in pairs.skipped:
        logger.warning('%s: skipped %s: %s', what, name, reason)
    if not pairs.images:
        raise ValueError(f'{what}: no usable image-caption row in {", ".join(paths)}'
                         f'{f" ({len(pairs.skipped)} skipped)" if pairs.skipped else ""}')
    return pairs


def _read_samples(paths, kind, image_column, caption_column, what) -> Pairs:
    from ..distributed.inputs import fetched, list_inputs  # the readers of `ruclip embed` [distributed]

    inputs = list_inputs(paths, kind, image_column, caption_column)
    if not inputs.units:
        raise ValueError(f'{what}: {", ".join(paths)} holds no rows')
    if kind == 'table' and inputs.caption_column is None:
        raise ValueError(f'{what}: {", ".join(paths)} has no caption column (caption or text); name it with '
                         f'--caption-column')
    images, captions, skipped = [], [], []
    for sample in fetched(inputs.samples(range(len(inputs.units))), URL_TIMEOUT):
        caption = (sample.caption or '').strip()
        if sample.error:
            skipped.append((sample.image_path, sample.error))
        elif not caption:
            skipped.append((sample.image_path, 'no caption'))
        else:
            images.append(sample.image)
            captions.append(caption)
    group_of = {}
    groups = [group_of.setdefault(caption, len(group_of)) for caption in captions]
    return Pairs(images=images, groups=groups, captions=captions, fingerprint=inputs.fingerprint(),
                 source=', '.join(paths), skipped=skipped)


def _read_image_folder(folder, templates, what) -> Pairs:
    templates = check_templates(templates if templates is not None else ['{}'])
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith('.'))
    if not classes:
        raise ValueError(f'{what}: {folder} has no class subfolders (an ImageFolder holds one folder of '
                         f'images per class)')
    images, groups = [], []
    digest = hashlib.sha256(json.dumps(['folder', classes, templates], ensure_ascii=False).encode())
    for number, name in enumerate(classes):
        try:
            files = find_images(os.path.join(folder, name))
        except ValueError:
            continue  # a class folder without images: the class stays, with no rows
        for path in files:
            stat = os.stat(path)
            digest.update(f'{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode('utf-8', 'surrogateescape'))
        images.extend(files)
        groups.extend([number] * len(files))
    return Pairs(images=images, groups=groups, classes=[name.replace('_', ' ') for name in classes],
                 templates=templates, fingerprint=digest.hexdigest(), source=folder)


@dataclass
class DistinctPictures:
    """Pictures embedded once each, however many rows name them (see embed_distinct).

    embedded: Predictor.embed_images of the distinct pictures; rows: the positions of the rows
    whose picture was read; picks: for each of rows, its row of embedded.latents; reasons:
    {picture: why it cannot be read}.
    """
    embedded: object
    rows: List[int]
    picks: List[int]
    reasons: dict


def embed_distinct(predictor, images: Sequence, progress: bool = False) -> DistinctPictures:
    """Each distinct picture of `images` (file paths or encoded bytes, a picture repeated for each
    of its captions) through the image tower once, in first-seen order."""
    distinct = list(dict.fromkeys(images))
    embedded = predictor.embed_images(distinct, progress=progress)
    latent_row = {distinct[position]: row for row, position in enumerate(embedded.kept)}
    rows = [i for i, image in enumerate(images) if image in latent_row]
    return DistinctPictures(embedded=embedded, rows=rows, picks=[latent_row[images[i]] for i in rows],
                            reasons={distinct[position]: reason for position, _, reason in embedded.failures})
