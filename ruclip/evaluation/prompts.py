"""The Russian class names and prompt templates shipped with ruclip, one data file per list.

names/<stem>_classnames.txt: the Russian class names, one a line, in the dataset loader's label order;
names/<stem>_english.txt: the English names they translate, line for line (CLIP_benchmark's);
names/<stem>_templates.txt: Russian templates, each with one '{}' for the class name.
names/PROVENANCE.md says where each list comes from and how it was translated.
"""
import json
import os
from typing import Dict, List

from .._outputs import atomic_open

NAMES_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'names')
# our stem -> the dataset names CLIP_benchmark looks the lists up under (its builder.py)
CLIP_BENCHMARK_KEYS = {
    'cifar10': ['cifar10'], 'cifar100': ['cifar100'], 'imagenet1k': ['imagenet1k'], 'food101': ['food101'],
    'sun397': ['sun397'], 'cars': ['cars'], 'fgvc_aircraft': ['fgvc_aircraft'], 'dtd': ['dtd'], 'pets': ['pets'],
    'caltech101': ['caltech101', 'vtab/caltech101'], 'flowers102': ['vtab/flowers', 'flowers'], 'stl10': ['stl10'],
    'mnist': ['mnist'], 'pcam': ['vtab/pcam', 'pcam'], 'renderedsst2': ['renderedsst2'],
    'clevr_count': ['vtab/clevr_count_all', 'clevr_count_all'], 'hateful_memes': ['hateful_memes'],
    'birdsnap': ['birdsnap'],
}


def shipped_stems() -> List[str]:
    """The datasets that have shipped Russian names, e.g. 'cifar10', 'imagenet1k'."""
    return sorted(name[:-len('_classnames.txt')] for name in os.listdir(NAMES_FOLDER)
                  if name.endswith('_classnames.txt'))


def class_names(stem: str) -> List[str]:
    """The Russian class names of dataset `stem`, in its loader's label order."""
    return read_lines(_path(stem, 'classnames'))


def english_names(stem: str) -> List[str]:
    """The English class names the Russian ones translate, line for line."""
    return read_lines(_path(stem, 'english'))


def templates(stem: str) -> List[str]:
    """The Russian prompt templates of dataset `stem`, each with one '{}'."""
    return read_lines(_path(stem, 'templates'))


def read_lines(path) -> List[str]:
    """The non-blank lines of a UTF-8 text file, stripped (a class name or template file)."""
    with open(path, encoding='utf-8') as file:
        lines = [line.strip() for line in file]
    lines = [line for line in lines if line]
    if not lines:
        raise ValueError(f'{path} has no lines: expected one class name or template a line')
    return lines


def write_clip_benchmark_files(folder) -> Dict[str, str]:
    """ru_classnames.json and ru_zeroshot_classification_templates.json in `folder`, for
    `clip_benchmark eval --custom_classname_file ... --custom_template_file ...`: every shipped list
    under each of CLIP_benchmark's names for its dataset, templates written with its '{c}'.
    Returns {'classnames': path, 'templates': path}."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    names, prompts = {}, {}
    for stem in shipped_stems():
        for key in CLIP_BENCHMARK_KEYS.get(stem, [stem]):
            names[key] = class_names(stem)
            prompts[key] = [template.replace('{}', '{c}') for template in templates(stem)]
    paths = {'classnames': os.path.join(folder, 'ru_classnames.json'),
             'templates': os.path.join(folder, 'ru_zeroshot_classification_templates.json')}
    for kind, value in (('classnames', names), ('templates', prompts)):
        with atomic_open(paths[kind], 'w', encoding='utf-8') as file:
            json.dump(value, file, ensure_ascii=False, indent=1)
    return paths


def _path(stem: str, kind: str) -> str:
    path = os.path.join(NAMES_FOLDER, f'{stem}_{kind}.txt')
    if not os.path.isfile(path):
        raise ValueError(f'no shipped {kind} for dataset {stem!r}; shipped: {shipped_stems()}')
    return path
