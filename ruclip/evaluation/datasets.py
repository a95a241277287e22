"""Evaluation splits: the RuCLIP table's datasets through their torchvision loaders, and local forms.

load_split(name, root, split) -> EvalSplit, whatever the source: a registry name (DATASETS), or
'imagefolder', 'csv', 'jsonl', 'wds' (CLIP_benchmark's webdataset folder) for your own data
(ruclip.evaluation.local). Images are given as file paths wherever the loader keeps them, so the
Predictor's worker threads decode them; in-memory sets (CIFAR, MNIST, STL10, PCam) as PIL images.
"""
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from .._optional import require
from . import prompts
from .split import EvalSplit


@dataclass(frozen=True)
class Spec:
    """A registry dataset: make(root, split, download) -> torchvision dataset, its splits, its metric."""
    make: Callable
    test: str
    train: Optional[str]
    val: Optional[str] = None  # None: linear probe carves a validation set out of train
    metric: str = 'acc1'
    target: Callable = int  # the loader's target -> class index
    note: str = ''


def _tv(name):
    def make(root, split, download, **options):
        datasets = require('torchvision.datasets', 'eval', 'evaluation datasets')
        return getattr(datasets, name)(root, split=split, download=download, **options)
    return make


def _tv_train_flag(name):
    def make(root, split, download):
        datasets = require('torchvision.datasets', 'eval', 'evaluation datasets')
        return getattr(datasets, name)(root, train=split == 'train', download=download)
    return make


def _no_split(name):
    def make(root, split, download):
        datasets = require('torchvision.datasets', 'eval', 'evaluation datasets')
        return getattr(datasets, name)(root, download=download)
    return make


def _imagenet(root, split, download):
    if download:
        raise ValueError('ImageNet cannot be downloaded automatically: put ILSVRC2012_devkit_t12.tar.gz and '
                         'ILSVRC2012_img_val.tar (or the extracted val/ folder and meta.bin) in --root')
    return require('torchvision.datasets', 'eval', 'evaluation datasets').ImageNet(root, split=split)


def _aircraft(root, split, download):
    return _tv('FGVCAircraft')(root, split, download, annotation_level='variant')


def _dtd(root, split, download):
    return _tv('DTD')(root, split, download, partition=1)


MEAN_RECALL = 'mean_per_class_recall'
DATASETS: Dict[str, Spec] = {
    'cifar10': Spec(_tv_train_flag('CIFAR10'), 'test', 'train'),
    'cifar100': Spec(_tv_train_flag('CIFAR100'), 'test', 'train'),
    'imagenet1k': Spec(_imagenet, 'val', 'train'),
    'food101': Spec(_tv('Food101'), 'test', 'train'),
    'sun397': Spec(_no_split('SUN397'), 'all', None, note='torchvision has no SUN397 partitions: the whole set'),
    'cars': Spec(_tv('StanfordCars'), 'test', 'train'),
    'fgvc_aircraft': Spec(_aircraft, 'test', 'train', 'val', metric=MEAN_RECALL),
    'dtd': Spec(_dtd, 'test', 'train', 'val'),
    'pets': Spec(_tv('OxfordIIITPet'), 'test', 'trainval', metric=MEAN_RECALL),
    'caltech101': Spec(_no_split('Caltech101'), 'all', None, metric=MEAN_RECALL,
                       note='torchvision has no Caltech101 split: the whole set (background class left out)'),
    'flowers102': Spec(_tv('Flowers102'), 'test', 'train', 'val', metric=MEAN_RECALL),
    'stl10': Spec(_tv('STL10'), 'test', 'train'),
    'mnist': Spec(_tv_train_flag('MNIST'), 'test', 'train'),
    'pcam': Spec(_tv('PCAM'), 'test', 'train', 'val'),
    'renderedsst2': Spec(_tv('RenderedSST2'), 'test', 'train', 'val'),
    'clevr_count': Spec(_tv('CLEVRClassification'), 'val', 'train', target=lambda count: count - 3,
                        note="torchvision's CLEVR test split has no labels: the val split is the test set; "
                             'classes are 3 to 10 objects (VTAB clevr_count_all)'),
}
LOCAL_FORMS = ('imagefolder', 'csv', 'jsonl', 'wds', 'hateful_memes', 'birdsnap')


def dataset_names() -> List[str]:
    from .benchmarks import NAMES
    return sorted(DATASETS) + list(LOCAL_FORMS) + list(NAMES)


def load_split(name: str, root, split: Optional[str] = None, download: bool = False,
               classnames: Optional[Sequence[str]] = None, templates: Optional[Sequence[str]] = None) -> EvalSplit:
    """A split of a dataset, with its Russian class names and templates.

    Args:
        name: a registry name (DATASETS, e.g. 'food101'), or a local form: 'imagefolder' (root = a
            folder of class folders), 'csv' / 'jsonl' (root = the file), 'wds' or 'wds/NAME' (root =
            a CLIP_benchmark webdataset folder), 'hateful_memes' (root = the folder of
            dev_seen.jsonl and img/), 'birdsnap' (root = an image folder per species, named as the
            English list), or a shared Russian benchmark: xm3600, xm3600_mteb, xtd10, coco_sm,
            babel_imagenet, babel_imagenet_label (root and split: see ruclip.evaluation.benchmarks).
        root (str | os.PathLike): where the data is (or goes, with download).
        split: the split; default the test split the CLIP paper used.
        download: let the torchvision loader (or the benchmark's loader) download the data.
        classnames: class names in label order, overriding the shipped Russian list.
        templates: prompts, each with one '{}', overriding the shipped Russian list.

    Returns:
        EvalSplit: the images, labels or captions, class names and templates.

    Raises:
        ValueError: an unknown dataset (the message lists them), or download for a local form.
        FileNotFoundError: data missing under root.
    """
    from . import benchmarks, local

    root = os.fspath(root)
    if name in benchmarks.NAMES:
        result = benchmarks.load_benchmark(name, root, split, download)
    elif name in DATASETS:
        result = _registry_split(name, root, split, download)
    elif name in LOCAL_FORMS or name.startswith('wds/'):
        if download:
            raise ValueError(f'--download works for the torchvision datasets {sorted(DATASETS)} and the benchmarks '
                             f'{list(benchmarks.NAMES)}, not {name!r}')
        result = local.load_local(name, root, split)
    else:
        raise ValueError(f'unknown dataset {name!r}; choose one of {dataset_names()}')
    return with_prompts(result, classnames, templates)


def with_prompts(result: EvalSplit, classnames=None, templates=None) -> EvalSplit:
    """result with the given (or else the shipped) Russian class names and templates, checked."""
    stem = result.name.split('/')[-1]  # wds/cifar10: CLIP_benchmark's name for a webdataset copy of cifar10
    stem = stem if stem in prompts.shipped_stems() else None
    if classnames is not None:
        result.classnames = [str(name) for name in classnames]
    elif result.classnames is None and stem and result.labels is not None:
        result.classnames = prompts.class_names(stem)
    if templates is not None:
        result.templates = list(templates)
    elif result.templates is None and result.labels is not None:
        result.templates = prompts.templates(stem) if stem else ['{}', 'фото, на котором изображено {}']
    if result.labels is not None:
        if result.classnames is None:
            raise ValueError(f'{result.name}: no class names to prompt with; give classnames (--classnames FILE)')
        expected = len(result.classes) if result.classes else max(result.labels, default=-1) + 1
        if len(result.classnames) < expected or result.classes and len(result.classnames) != expected:
            raise ValueError(f'{result.name}: {len(result.classnames)} class names for {expected} classes; '
                             f'give one name per class, in label order')
    return result


def _registry_split(name: str, root: str, split: Optional[str], download: bool) -> EvalSplit:
    spec = DATASETS[name]
    split = split or spec.test
    if spec.test == 'all' and split != 'all':
        raise ValueError(f"torchvision's {name} has no splits (only 'all'): for a linear probe, write your partition "
                         f"as two image folders or CSV files and use --dataset imagefolder or csv")
    try:
        dataset = spec.make(root, split, download)
    except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
        raise FileNotFoundError(f'{name} ({split}) not found under {root}: {error} (pass --download to fetch it, '
                                f'where its loader can)') from None
    images, targets = loader_items(dataset)
    classes = getattr(dataset, 'classes', None) or getattr(dataset, 'categories', None)
    if name == 'clevr_count':
        classes = [str(count) for count in range(3, 11)]
    if classes is not None:
        classes = [c if isinstance(c, str) else ', '.join(c) for c in classes]  # ImageNet: a tuple of synonyms
    return EvalSplit(name=name, split=split, images=images, labels=[spec.target(t) for t in targets],
                     classes=classes, metric=spec.metric, source=f'{name}:{os.path.abspath(root)}:{split}')


def loader_items(dataset):
    """(images, targets) of a torchvision dataset without decoding its images where it keeps files."""
    for files, labels in (('_image_files', '_labels'), ('_images', '_labels')):
        if hasattr(dataset, files) and hasattr(dataset, labels):
            return [os.fspath(path) for path in getattr(dataset, files)], list(getattr(dataset, labels))
    samples = getattr(dataset, '_samples', None) or getattr(dataset, 'samples', None)
    if samples is not None:
        return [os.fspath(path) for path, _ in samples], [target for _, target in samples]
    if hasattr(dataset, 'categories') and hasattr(dataset, 'index'):  # Caltech101
        folder = os.path.join(dataset.root, '101_ObjectCategories')
        return ([os.path.join(folder, dataset.categories[y], f'image_{i:04d}.jpg')
                 for i, y in zip(dataset.index, dataset.y)], list(dataset.y))
    for attribute in ('targets', 'labels'):
        targets = getattr(dataset, attribute, None)
        if targets is not None:
            return LoaderImages(dataset), [int(t) for t in targets]
    images = LoaderImages(dataset)
    return images, [int(dataset[i][1]) for i in range(len(dataset))]  # e.g. PCam: labels only by item


class LoaderImages(Sequence):
    """The images of a torchvision dataset (its PIL images, made from memory as they are read)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self):
        return (self.dataset[i][0] for i in range(len(self.dataset)))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self.dataset[index][0]
