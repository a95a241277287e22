"""The shared Russian image-text benchmarks, each read in the layout its publishers (or the tool
that reports it) leave on disk, and fetched with download=True where the source allows it.

name             root holds                                                    split
xm3600           captions.jsonl + images/<image/key>.jpg (CLIP_benchmark's      'test'; first Russian caption
                 `crossmodal3600` folder, <dataset_root>/xm3600)                per image, as CLIP_benchmark
xm3600_mteb      the Hub dataset floschne/xm3600 (MIEB/mteb): <lang>-*.parquet  'test'; every Russian caption
                 (data/ru-00000-of-00001.parquet) with image_id, image
                 {bytes, path}, captions; or root = that parquet file
xtd10            test_image_names.txt + test_1kcaptions_ru.txt + images/        'test'; 1000 COCO images, one
                 (the XTD10 repository's files beside CLIP_benchmark's          caption each
                 <dataset_root>/xtd10/images)
coco_sm          meta/google.json, meta/bing.json, meta/nllb.json (the          the translation: google (default),
                 unum-cloud/coco-sm repository) + val2014/ (COCO's images)      bing or nllb
babel_imagenet   ImageNet as torchvision reads it (meta.bin + val/<wnid>/), and 'val'; the Russian subset of
babel_imagenet_label  babel_imagenet.json and nllb_dist13b_prompts.json (the    classes; NLLB-translated templates
                 Babel-ImageNet repository's data/; else CLIP_benchmark's       (or the bare label)
                 installed copies)

Every loader returns an EvalSplit (datasets.py); a missing image is an error naming it, since a
benchmark scored on part of its images is not comparable with the published figures.
"""
import glob
import json
import logging
import os
import shutil
import tarfile
import urllib.request
import zipfile
from typing import Dict, List, Optional

from .._outputs import atomic_open
from .split import EvalSplit

logger = logging.getLogger('ruclip')
LANGUAGE = 'ru'

XM3600_CAPTIONS_URL = 'https://google.github.io/crossmodal-3600/web-data/captions.zip'
XM3600_IMAGES_URL = 'https://open-images-dataset.s3.amazonaws.com/crossmodal-3600/images.tgz'
XM3600_HUB = ('floschne/xm3600', '8d3e5665526c55a5855cd6ddfbaba2032bc7cee4')  # mteb's XM3600T2IRetrieval pins this
XTD10_FILES_URL = 'https://raw.githubusercontent.com/adobe-research/Cross-lingual-Test-Dataset-XTD10/main/XTD10/'
XTD10_IMAGES_URL = 'https://nllb-data.com/test/xtd10/images.tar.gz'  # CLIP_benchmark's source of the 1000 images
COCO_SM_META_URL = 'https://raw.githubusercontent.com/unum-cloud/coco-sm/main/meta/'
COCO_IMAGES_URL = 'http://images.cocodataset.org/zips/val2014.zip'
BABEL_DATA_URL = 'https://raw.githubusercontent.com/gregor-ge/Babel-ImageNet/main/data/'
COCO_SM_TRANSLATIONS = ('google', 'bing', 'nllb')
BABEL_PROMPTS = {'babel_imagenet': 'nllb_dist13b_prompts', 'babel_imagenet_label': 'label'}
NAMES = ('xm3600', 'xm3600_mteb', 'xtd10', 'coco_sm') + tuple(BABEL_PROMPTS)


def load_benchmark(name: str, root: str, split: Optional[str] = None, download: bool = False) -> EvalSplit:
    """The Russian split of benchmark `name` (one of NAMES) under `root`; download fetches what is missing."""
    if name not in NAMES:
        raise ValueError(f'unknown benchmark {name!r}; choose one of {list(NAMES)}')
    if name == 'coco_sm':
        return coco_sm(root, split or 'google', download)
    if name in BABEL_PROMPTS:
        return babel_imagenet(root, name, split or 'val', download)
    if split not in (None, 'test'):
        raise ValueError(f"{name} has one split, 'test'; got {split!r}")
    return {'xm3600': xm3600, 'xm3600_mteb': xm3600_mteb, 'xtd10': xtd10}[name](root, download)


# ---- XM3600 --------------------------------------------------------------------------------------

def xm3600(root: str, download: bool = False) -> EvalSplit:
    """Crossmodal-3600 as CLIP_benchmark's `crossmodal3600` reads it: captions.jsonl (one row per
    image: {"image/key": ..., "ru": {"caption": [...]}, ...}) and images/<key>.jpg; each image
    with its FIRST Russian caption only (CLIP_benchmark's create_annotation_file, which immich's
    XM3600 table was measured with)."""
    captions_file, images = os.path.join(root, 'captions.jsonl'), os.path.join(root, 'images')
    if download:
        if not os.path.isfile(captions_file):
            _fetch_archive(XM3600_CAPTIONS_URL, root)
        if not os.path.isdir(images):
            _fetch_archive(XM3600_IMAGES_URL, images)
    _need(captions_file, 'xm3600', 'the Crossmodal-3600 captions.jsonl (CLIP_benchmark dataset_root/xm3600)')
    paths, captions = [], []
    with open(captions_file, encoding='utf-8') as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                key, texts = row['image/key'], row[LANGUAGE]['caption']
            except (KeyError, TypeError):
                raise ValueError(f'{captions_file} line {number}: expected {{"image/key": ..., "ru": {{"caption": '
                                 f'[...]}}}}') from None
            paths.append(os.path.join(images, f'{key}.jpg'))
            captions.append([texts[0]])
    _check_images(paths, 'xm3600')
    return EvalSplit(name='xm3600', split='test', images=paths, captions=captions, metric='recall@1',
                     source=f'xm3600:{os.path.abspath(captions_file)}:{os.path.getmtime(captions_file)}')


def xm3600_mteb(root: str, download: bool = False) -> EvalSplit:
    """Crossmodal-3600 as MIEB/mteb's XM3600T2IRetrieval reads it: the Hub dataset floschne/xm3600,
    one split per language, parquet rows {image_id, image: {bytes, path}, captions: [...]}; every
    Russian caption of each image (about 2 per image). root: the dataset's folder (a Hub snapshot
    or a copy: its <lang>-*.parquet files anywhere below) or one parquet file."""
    if download and not _parquet_files(root):
        hub = _require('huggingface_hub', 'the XM3600 parquet download')
        repo, revision = XM3600_HUB
        hub.snapshot_download(repo, repo_type='dataset', revision=revision, local_dir=root,
                              allow_patterns=[f'*{LANGUAGE}-*.parquet', f'*{LANGUAGE}/*.parquet'])
    files = _parquet_files(root)
    if not files:
        raise FileNotFoundError(f'xm3600_mteb: no {LANGUAGE}-*.parquet under {root}; expected the Hub dataset '
                                f'{XM3600_HUB[0]} (pass --download to fetch its Russian split)')
    parquet = _require('pyarrow.parquet', 'the XM3600 parquet files')
    images, captions = [], []
    for path in files:
        table = parquet.read_table(path, columns=['image_id', 'image', 'captions'])
        for row in table.to_pylist():
            image = row['image']
            data = image.get('bytes') if isinstance(image, dict) else None
            if not data:
                raise ValueError(f'{path}: image {row["image_id"]} has no bytes; expected {{bytes, path}} structs')
            if not row['captions']:
                raise ValueError(f'{path}: image {row["image_id"]} has no captions')
            images.append(data)
            captions.append([str(text) for text in row['captions']])
    stamp = ':'.join(f'{os.path.abspath(p)}:{os.path.getsize(p)}' for p in files)
    return EvalSplit(name='xm3600_mteb', split='test', images=images, captions=captions, metric='recall@1',
                     source=f'xm3600_mteb:{stamp}')


def _parquet_files(root: str) -> List[str]:
    if os.path.isfile(root) and root.endswith('.parquet'):
        return [root]
    found = glob.glob(os.path.join(root, '**', f'{LANGUAGE}-*.parquet'), recursive=True)
    found += glob.glob(os.path.join(root, '**', LANGUAGE, '*.parquet'), recursive=True)
    return sorted(set(found))


# ---- XTD10 ---------------------------------------------------------------------------------------

def xtd10(root: str, download: bool = False) -> EvalSplit:
    """XTD10 (adobe-research/Cross-lingual-Test-Dataset-XTD10): test_image_names.txt (1000 COCO
    file names) and test_1kcaptions_ru.txt (their Russian captions, line for line), as
    CLIP_benchmark's `xtd10` downloads them, with the images in images/."""
    names_file = os.path.join(root, 'test_image_names.txt')
    captions_file = os.path.join(root, f'test_1kcaptions_{LANGUAGE}.txt')
    if download:
        for path in (names_file, captions_file):
            if not os.path.isfile(path):
                _fetch(XTD10_FILES_URL + os.path.basename(path), path)
        if not os.path.isdir(os.path.join(root, 'images')):
            _fetch_archive(XTD10_IMAGES_URL, root)  # the archive holds images/
    for path in (names_file, captions_file):
        _need(path, 'xtd10', 'the XTD10 repository file')
    names, texts = _lines(names_file), _lines(captions_file)
    if len(names) != len(texts):
        raise ValueError(f'xtd10: {len(names)} image names but {len(texts)} captions; they go line for line')
    paths = [os.path.join(root, 'images', name) for name in names]
    _check_images(paths, 'xtd10')
    return EvalSplit(name='xtd10', split='test', images=paths, captions=[[text] for text in texts],
                     metric='recall@1',
                     source=f'xtd10:{os.path.abspath(captions_file)}:{os.path.getmtime(captions_file)}')


# ---- COCO-SM -------------------------------------------------------------------------------------

def coco_sm(root: str, translation: str = 'google', download: bool = False) -> EvalSplit:
    """COCO-SM (unum-cloud/coco-sm): the COCO Karpathy test split (less 7 images) machine-translated;
    meta/<translation>.json maps each language to [{filename, captions: [...]}], images in
    val2014/. The English captions of the same file are kept as reference_captions, for NDCG@20."""
    if translation not in COCO_SM_TRANSLATIONS:
        raise ValueError(f'coco_sm: the split is the translation, one of {list(COCO_SM_TRANSLATIONS)}; '
                         f'got {translation!r}')
    meta_file = os.path.join(root, 'meta', f'{translation}.json')
    images = os.path.join(root, 'val2014')
    if download:
        if not os.path.isfile(meta_file):
            _fetch(COCO_SM_META_URL + f'{translation}.json', meta_file)
        if not os.path.isdir(images):
            _fetch_archive(COCO_IMAGES_URL, root)  # the archive holds val2014/
    _need(meta_file, 'coco_sm', 'the coco-sm repository\'s meta file')
    with open(meta_file, encoding='utf-8') as file:
        meta = json.load(file)
    if not isinstance(meta, dict) or LANGUAGE not in meta or 'en' not in meta:
        raise ValueError(f'{meta_file}: expected {{"en": [...], "{LANGUAGE}": [...], ...}}')
    russian, english = meta[LANGUAGE], meta['en']
    if [row['filename'] for row in russian] != [row['filename'] for row in english] or \
            [len(row['captions']) for row in russian] != [len(row['captions']) for row in english]:
        raise ValueError(f'{meta_file}: the Russian and English entries do not pair up image for image, '
                         f'caption for caption')
    paths = [os.path.join(images, row['filename']) for row in russian]
    _check_images(paths, 'coco_sm')
    return EvalSplit(name='coco_sm', split=translation, images=paths,
                     captions=[list(row['captions']) for row in russian],
                     reference_captions=[list(row['captions']) for row in english], metric='recall@1',
                     source=f'coco_sm:{os.path.abspath(images)}:{len(paths)}')


# ---- Babel-ImageNet ------------------------------------------------------------------------------

def babel_imagenet(root: str, name: str = 'babel_imagenet', split: str = 'val', download: bool = False) -> EvalSplit:
    """Babel-ImageNet in Russian: the ImageNet val images of the classes that have a Russian label
    (748 of 1000), labelled 0..n-1 in the order of babel_imagenet.json's "RU" entry ([ImageNet
    class indices], [labels]); prompted with the NLLB-translated templates (name 'babel_imagenet')
    or the bare label ('babel_imagenet_label'), as the Babel-ImageNet paper reports both."""
    labels_file = _babel_file(root, 'babel_imagenet.json', download)
    with open(labels_file, encoding='utf-8') as file:
        entry = json.load(file).get(LANGUAGE.upper())
    if not entry or len(entry) != 2 or len(entry[0]) != len(entry[1]):
        raise ValueError(f'{labels_file}: expected "RU": [[class indices], [labels]] of equal length')
    indices, classnames = [int(i) for i in entry[0]], [str(name) for name in entry[1]]
    if BABEL_PROMPTS[name] == 'label':
        templates = ['{}']
    else:
        prompts_file = _babel_file(root, 'nllb_dist13b_prompts.json', download)
        with open(prompts_file, encoding='utf-8') as file:
            templates = json.load(file).get(LANGUAGE.upper())
        if not templates:
            raise ValueError(f'{prompts_file} has no "RU" templates')
    paths, targets = _imagenet_images(root, split, set(indices))
    position = {index: i for i, index in enumerate(indices)}
    return EvalSplit(name=name, split=split, images=paths, labels=[position[t] for t in targets],
                     classes=classnames, classnames=classnames, templates=list(templates),
                     source=f'babel_imagenet:{os.path.abspath(root)}:{split}:{len(paths)}')


def _babel_file(root: str, filename: str, download: bool) -> str:
    """root/<filename> (the Babel-ImageNet repository's data/ file), fetched when download is set,
    else CLIP_benchmark's installed copy of the same file."""
    path = os.path.join(root, filename)
    if download and not os.path.isfile(path):
        _fetch(BABEL_DATA_URL + filename, path)
    if os.path.isfile(path):
        return path
    try:
        import clip_benchmark.datasets as shipped
    except ImportError:
        shipped = None
    if shipped is not None:
        copy = os.path.join(os.path.dirname(shipped.__file__), filename)
        if os.path.isfile(copy):
            return copy
    raise FileNotFoundError(f'babel_imagenet: no {path}; put the Babel-ImageNet repository\'s data/{filename} '
                            f'there, pip install clip-benchmark (which ships it), or pass --download')


def _imagenet_images(root: str, split: str, wanted: set):
    """(paths, ImageNet class indices) of root/<split>/<wnid>/* for the classes in `wanted`, the
    index of a wnid its position among meta.bin's 1000 sorted wnids (torchvision's ImageNet order)."""
    meta = os.path.join(root, 'meta.bin')
    if not os.path.isfile(meta):
        # torchvision parses the devkit and val archives (left in root) into meta.bin and val/<wnid>/
        _require('torchvision.datasets', 'ImageNet').ImageNet(root, split=split)
    import torch
    wnid_to_classes = torch.load(meta, weights_only=True)[0]
    wnids = sorted(wnid_to_classes)
    if len(wnids) != 1000:
        raise ValueError(f'{meta} lists {len(wnids)} ImageNet classes, not 1000')
    from ..image_files import find_images
    paths, targets = [], []
    for index in sorted(wanted):
        folder = os.path.join(root, split, wnids[index])
        if not os.path.isdir(folder):
            raise FileNotFoundError(f'babel_imagenet: no {folder} (ImageNet class {index}); expected the whole '
                                    f'{split} split as torchvision extracts it')
        files = find_images([folder])
        paths.extend(files)
        targets.extend([index] * len(files))
    return paths, targets


# ---- plumbing ------------------------------------------------------------------------------------

def _need(path: str, name: str, what: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{name}: no {path}; expected {what} (pass --download to fetch it)')


def _check_images(paths: List[str], name: str) -> None:
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(f'{name}: {len(missing)} of {len(paths)} images are missing (first: {missing[0]}); '
                                f'a partial set is not comparable with the published figures')


def _lines(path: str) -> List[str]:
    with open(path, encoding='utf-8') as file:
        return [line.rstrip('\n').rstrip('\r') for line in file if line.strip()]


def _require(module: str, what: str):
    from .._optional import require
    return require(module, 'eval', what)


def _fetch(url: str, path: str) -> None:
    """url's content at path, complete or absent."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    logger.info('downloading %s', url)
    with urllib.request.urlopen(url, timeout=60) as response, atomic_open(path, 'wb') as file:
        shutil.copyfileobj(response, file, 1 << 20)


def _fetch_archive(url: str, folder: str) -> None:
    """Download a .zip or .tar.gz archive beside `folder` and extract it into `folder`."""
    os.makedirs(folder, exist_ok=True)
    archive = os.path.join(folder, os.path.basename(url))
    _fetch(url, archive)
    try:
        if archive.endswith('.zip'):
            with zipfile.ZipFile(archive) as opened:
                opened.extractall(folder)
        else:
            with tarfile.open(archive) as opened:
                opened.extractall(folder, filter='data')
    finally:
        os.remove(archive)


def benchmark_roots(data_root: str) -> Dict[str, str]:
    """The folder of each benchmark under one data folder, as the scoreboard lays them out."""
    return {'xm3600': os.path.join(data_root, 'xm3600'), 'xm3600_mteb': os.path.join(data_root, 'xm3600_mteb'),
            'xtd10': os.path.join(data_root, 'xtd10'), 'coco_sm': os.path.join(data_root, 'coco_sm'),
            'babel_imagenet': os.path.join(data_root, 'imagenet'),
            'babel_imagenet_label': os.path.join(data_root, 'imagenet')}
