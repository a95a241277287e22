"""Evaluation data from local files: an image folder, a CSV or JSONL table, a CLIP_benchmark
webdataset folder, and the two datasets of the RuCLIP table that have no torchvision loader
(Hateful Memes, Birdsnap)."""
import csv
import json
import os
import tarfile
from typing import List, Optional, Tuple

from ..image_files import find_images
from . import prompts
from .split import EvalSplit

IMAGE_EXTENSIONS = ('webp', 'png', 'jpg', 'jpeg')  # CLIP_benchmark's, in its order of preference


def load_local(name: str, root: str, split: Optional[str]) -> EvalSplit:
    if name == 'imagefolder':
        return image_folder(root, split)
    if name in ('csv', 'jsonl'):
        return table(root, name)
    if name == 'hateful_memes':
        return hateful_memes(root, split)
    if name == 'birdsnap':
        return birdsnap(root, split)
    return webdataset(root, split or 'test', name)


def image_folder(root: str, split: Optional[str] = None, name: str = 'imagefolder') -> EvalSplit:
    """root/<class>/<image>: classes are the sub-folders in sorted order (as torchvision's
    ImageFolder), their names the prompts' class names unless classnames are given; with `split`,
    root/<split>/<class>/<image>."""
    folder = os.path.join(root, split) if split else root
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'{name}: no such folder: {folder}')
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith('.'))
    if not classes:
        raise ValueError(f'{name}: {folder} has no class folders; expected {folder}/<class>/<image files>')
    images, labels = [], []
    for index, class_name in enumerate(classes):
        files = find_images([os.path.join(folder, class_name)])
        images.extend(files)
        labels.extend([index] * len(files))
    if not images:
        raise ValueError(f'{name}: no image files in the class folders of {folder}')
    return EvalSplit(name=name, split=split or 'all', images=images, labels=labels, classes=classes,
                     classnames=[c.replace('_', ' ') for c in classes], source=f'{name}:{os.path.abspath(folder)}')


def table(path: str, kind: str) -> EvalSplit:
    """A CSV (with a header) or JSONL file of rows {image, label} (classification) or {image, caption}
    (retrieval; an image on several rows, or a list of captions, has several captions). Image paths
    are relative to the file's folder. String labels are the class names, classes in sorted order;
    integer labels are class indices (then give classnames)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{kind}: no such file: {path}')
    with open(path, encoding='utf-8', newline='') as file:
        if kind == 'csv':
            reader = csv.DictReader(file)
            numbered = [(reader.line_num, row) for row in reader]
        else:
            numbered = [(number, _json_row(line, number, path)) for number, line in enumerate(file, 1) if line.strip()]
    if not numbered:
        raise ValueError(f'{path} has no rows')
    keys = set(numbered[0][1])
    if 'image' not in keys or not keys & {'label', 'caption'}:
        raise ValueError(f'{path}: rows need an "image" column and a "label" or "caption" column, got {sorted(keys)}')
    _check_filled(path, numbered, ('image', 'caption' if 'caption' in keys else 'label'))
    rows = [row for _, row in numbered]
    folder = os.path.dirname(os.path.abspath(path))
    source = f'{kind}:{os.path.abspath(path)}:{os.path.getmtime(path)}'
    if 'caption' in keys:
        order, captions = {}, []
        for row in rows:
            image = os.path.join(folder, row['image'])
            if image not in order:
                order[image] = len(captions)
                captions.append([])
            texts = row['caption'] if isinstance(row['caption'], list) else [row['caption']]
            captions[order[image]].extend(str(text) for text in texts)
        return EvalSplit(name=kind, split='all', images=list(order), captions=captions, metric='recall@1',
                         source=source)
    raw = [row['label'] for row in rows]
    images = [os.path.join(folder, row['image']) for row in rows]
    if all(isinstance(value, int) or isinstance(value, str) and value.strip().isdigit() for value in raw):
        return EvalSplit(name=kind, split='all', images=images, labels=[int(value) for value in raw], source=source)
    classes = sorted({str(value) for value in raw})
    index = {name: i for i, name in enumerate(classes)}
    return EvalSplit(name=kind, split='all', images=images, labels=[index[str(value)] for value in raw],
                     classes=classes, classnames=classes, source=source)


def _check_filled(path: str, numbered: List[Tuple[int, dict]], columns: Tuple[str, ...]) -> None:
    """A ValueError naming each line whose row lacks a value (missing, null or blank) in one of `columns`:
    scored, a missing label would be a class called "None" and a missing image an error far from its cause."""
    missing = [f'line {number} ({", ".join(column for column in columns if _blank(row.get(column)))})'
               for number, row in numbered if any(_blank(row.get(column)) for column in columns)]
    if missing:
        shown = ', '.join(missing[:20]) + (f' and {len(missing) - 20} more' if len(missing) > 20 else '')
        raise ValueError(f'{path}: {len(missing)} rows lack a value in a column they need, {" and ".join(columns)}: '
                         f'{shown}; fill them in or remove those rows')


def _blank(value) -> bool:
    return value is None or isinstance(value, str) and not value.strip() or isinstance(value, list) and not value


def _json_row(line: str, number: int, path: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f'{path} line {number} is not JSON: {error}') from None
    if not isinstance(row, dict):
        raise ValueError(f'{path} line {number}: expected an object such as {{"image": ..., "label": ...}}')
    return row


def webdataset(root: str, split: str, name: str = 'wds') -> EvalSplit:
    """CLIP_benchmark's webdataset folder: root/<split>/nshards.txt and 0.tar ... N-1.tar, with
    root/classnames.txt and root/zeroshot_classification_templates.txt (its '{c}' becomes '{}'), or
    root/dataset_type.txt saying 'retrieval' (then each sample's .txt holds its captions, one a line)."""
    nshards_file = os.path.join(root, split, 'nshards.txt')
    if not os.path.isfile(nshards_file):
        raise FileNotFoundError(f'{name}: no {nshards_file}; expected a CLIP_benchmark webdataset folder '
                                f'(<root>/<split>/nshards.txt, 0.tar, ...)')
    kind = _optional_lines(os.path.join(root, 'dataset_type.txt'))
    retrieval = bool(kind) and kind[0].lower() == 'retrieval'
    images, targets = [], []
    for shard in range(int(open(nshards_file).read().strip())):
        for sample in _tar_samples(os.path.join(root, split, f'{shard}.tar')):
            extension = next((e for e in IMAGE_EXTENSIONS if e in sample), None)
            target = sample.get('txt' if retrieval else 'cls')
            if extension is None or target is None:
                continue  # as webdataset's to_tuple, a sample without both is skipped
            images.append(sample[extension])
            targets.append(target.decode('utf-8'))
    if not images:
        raise ValueError(f'{name}: no samples with an image and a {"txt" if retrieval else "cls"} in {root}/{split}')
    source = f'wds:{os.path.abspath(root)}:{split}:{len(images)}'
    if retrieval:
        return EvalSplit(name=name, split=split, images=images, captions=[t.splitlines() for t in targets],
                         metric='recall@1', source=source)
    classnames = _optional_lines(os.path.join(root, 'classnames.txt'))
    templates = _optional_lines(os.path.join(root, 'zeroshot_classification_templates.txt'))
    return EvalSplit(name=name, split=split, images=images, labels=[int(t) for t in targets], classes=classnames,
                     classnames=classnames, templates=[t.replace('{c}', '{}') for t in templates] or None,
                     source=source)


def _tar_samples(path: str):
    """{extension: bytes} per sample key, in the tar's order, as webdataset groups files."""
    sample, key = {}, None
    with tarfile.open(path) as archive:
        for member in archive:
            if not member.isfile():
                continue
            base = os.path.basename(member.name)
            stem, _, extension = base.partition('.')
            member_key = os.path.join(os.path.dirname(member.name), stem)
            if member_key != key and sample:
                yield sample
                sample = {}
            key = member_key
            sample[extension.lower()] = archive.extractfile(member).read()
    if sample:
        yield sample


def _optional_lines(path: str) -> List[str]:
    if not os.path.isfile(path):
        return []
    with open(path, encoding='utf-8') as file:
        return [line.strip() for line in file if line.strip()]


def hateful_memes(root: str, split: Optional[str]) -> EvalSplit:
    """The Hateful Memes challenge's folder: <split>.jsonl (rows {"img": "img/42953.png", "label": 0|1,
    "text": ...}) beside img/; the test split is dev_seen.jsonl (or dev.jsonl of the first release)."""
    names = [split] if split else ['dev_seen', 'dev']
    path = next((os.path.join(root, f'{n}.jsonl') for n in names if os.path.isfile(os.path.join(root, f'{n}.jsonl'))),
                None)
    if path is None:
        raise FileNotFoundError(f'hateful_memes: none of {[n + ".jsonl" for n in names]} in {root}')
    with open(path, encoding='utf-8') as file:
        rows = [_json_row(line, number, path) for number, line in enumerate(file, 1) if line.strip()]
    if any('label' not in row or 'img' not in row for row in rows):
        raise ValueError(f'{path}: every row needs "img" and "label" (the unlabelled test set cannot be scored)')
    return EvalSplit(name='hateful_memes', split=os.path.basename(path)[:-len('.jsonl')],
                     images=[os.path.join(root, row['img']) for row in rows],
                     labels=[int(row['label']) for row in rows],
                     classes=prompts.english_names('hateful_memes'), metric='roc_auc',
                     source=f'hateful_memes:{os.path.abspath(path)}')


def birdsnap(root: str, split: Optional[str]) -> EvalSplit:
    """An image folder per species (root/<split>/<species>/...), the folder names the English species
    names of the shipped list (case, '_' and '-' ignored); labels follow the shipped list's order."""
    found = image_folder(root, split or 'test', name='birdsnap')
    english = prompts.english_names('birdsnap')
    index = {_plain(species): i for i, species in enumerate(english)}
    unknown = [folder for folder in found.classes if _plain(folder) not in index]
    if unknown:
        raise ValueError(f'birdsnap: folders {unknown[:5]} are not species of the shipped list '
                         f'(ruclip/evaluation/names/birdsnap_english.txt)')
    found.labels = [index[_plain(found.classes[label])] for label in found.labels]
    found.classes, found.classnames = english, None
    return found


def _plain(name: str) -> str:
    return ''.join(c for c in name.lower().replace('_', ' ').replace('-', ' ') if c.isalnum() or c == ' ').strip()
