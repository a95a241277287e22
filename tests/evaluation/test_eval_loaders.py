"""Every dataset form, built on disk in the exact layout its reader expects, read by the real loader.

torchvision's own loaders run with download=False on tiny copies of the real layouts; our split must
give the same images (file for file) and labels as the loader's __getitem__, and its classes."""
import json
import struct
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.eval_data import colour_image
from ruclip.evaluation import prompts
from ruclip.evaluation.datasets import DATASETS, load_split

datasets = pytest.importorskip('torchvision.datasets')


def jpeg(path, label=0, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = 'JPEG' if path.suffix.lower() in ('.jpg', '.jpeg') else 'PNG'
    colour_image(label % 4, seed, size=12).save(path, format=kind)
    return path


def same_as_loader(split, dataset, target=lambda t: t):
    """Our split holds the loader's items: labels equal, every image the same pixels."""
    assert len(split) == len(dataset) > 0
    for i in range(len(dataset)):
        image, label = dataset[i]
        assert split.labels[i] == target(label)
        ours = split.images[i]
        ours = Image.open(ours) if isinstance(ours, str) else ours
        assert np.array_equal(np.asarray(ours.convert('RGB')), np.asarray(image.convert('RGB')))


def test_food101_layout_all_classes_in_shipped_order(tmp_path):
    english = prompts.english_names('food101')
    keys = [name.replace(' ', '_') for name in english]  # food-101/meta/classes.txt spells them so
    meta = {key: [] for key in keys}
    for i, key in enumerate(keys[:3] + keys[-2:]):
        jpeg(tmp_path / 'food-101' / 'images' / key / f'{100 + i}.jpg', i, i)
        meta[key].append(f'{key}/{100 + i}')
    (tmp_path / 'food-101' / 'meta').mkdir(parents=True)
    (tmp_path / 'food-101' / 'meta' / 'test.json').write_text(json.dumps(meta))
    split = load_split('food101', tmp_path)
    loader = datasets.Food101(tmp_path, split='test')
    same_as_loader(split, loader)
    assert split.classes == loader.classes and len(split.classnames) == 101 == len(loader.classes)
    assert [k.replace('_', ' ') for k in loader.classes] == english  # the shipped order is the loader's
    assert split.labels[-1] == 100 and split.classnames[100] == prompts.class_names('food101')[100]


def test_dtd_layout_gives_47_classes_in_shipped_order(tmp_path):
    english = prompts.english_names('dtd')
    labels = tmp_path / 'dtd' / 'dtd' / 'labels'
    labels.mkdir(parents=True)
    lines = []
    for i, texture in enumerate(english):
        jpeg(tmp_path / 'dtd' / 'dtd' / 'images' / texture / f'{texture}_0001.jpg', i, i)
        lines.append(f'{texture}/{texture}_0001.jpg')
    (labels / 'test1.txt').write_text('\n'.join(reversed(lines)) + '\n')
    split = load_split('dtd', tmp_path)
    loader = datasets.DTD(tmp_path, split='test', partition=1)
    same_as_loader(split, loader)
    assert loader.classes == english and split.labels[0] == 46 and len(split.classnames) == 47


def test_oxford_pets_layout_and_mean_per_class_recall(tmp_path):
    english = prompts.english_names('pets')
    assert english == sorted(english, key=str.lower)  # the breeds' ids 1..37 follow this order
    rows = []
    for i, breed in enumerate(english):
        image_id = f"{breed.replace(' ', '_') if i < 12 else breed.lower().replace(' ', '_')}_{i + 1}"
        jpeg(tmp_path / 'oxford-iiit-pet' / 'images' / f'{image_id}.jpg', i, i)
        rows.append(f'{image_id} {i + 1} {1 if i < 12 else 2} 1')
    (tmp_path / 'oxford-iiit-pet' / 'annotations').mkdir(parents=True)
    (tmp_path / 'oxford-iiit-pet' / 'annotations' / 'test.txt').write_text('\n'.join(rows) + '\n')
    split = load_split('pets', tmp_path)
    loader = datasets.OxfordIIITPet(tmp_path, split='test')
    same_as_loader(split, loader)
    assert loader.classes == english and split.metric == 'mean_per_class_recall'


def write_idx(path, array, magic):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'wb') as file:
        file.write(struct.pack('>I', magic) + b''.join(struct.pack('>I', n) for n in array.shape))
        file.write(array.astype(np.uint8).tobytes())


def test_mnist_raw_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (7, 28, 28)), np.array([3, 1, 4, 1, 5, 9, 2])
    for prefix in ('t10k', 'train'):  # the loader wants both splits' files
        write_idx(tmp_path / 'MNIST' / 'raw' / f'{prefix}-images-idx3-ubyte', images, 0x803)
        write_idx(tmp_path / 'MNIST' / 'raw' / f'{prefix}-labels-idx1-ubyte', labels, 0x801)
    split = load_split('mnist', tmp_path)
    loader = datasets.MNIST(tmp_path, train=False)
    same_as_loader(split, loader)
    assert split.labels == labels.tolist() and len(split.classnames) == 10 == len(loader.classes)
    assert np.array_equal(np.asarray(split.images[2]), images[2])


def test_sun397_caltech101_aircraft_sst2_clevr_imagenet_cars(tmp_path):
    # SUN397: ClassName.txt and <letter>/<class>/sun_*.jpg; the whole set, no partition
    (tmp_path / 'SUN397').mkdir()
    (tmp_path / 'SUN397' / 'ClassName.txt').write_text('/a/abbey\n/a/apartment_building/outdoor\n/b/bedroom\n')
    for i, folder in enumerate(['a/abbey', 'a/apartment_building/outdoor', 'b/bedroom', 'b/bedroom']):
        jpeg(tmp_path / 'SUN397' / folder / f'sun_{i}.jpg', i, i)
    sun = load_split('sun397', tmp_path, classnames=['аббатство', 'жилой дом снаружи', 'спальня'])
    same_as_loader(sun, datasets.SUN397(tmp_path))
    assert sorted(sun.labels) == [0, 1, 2, 2] and sun.classes == ['abbey', 'apartment_building/outdoor', 'bedroom']
    # Caltech101: 101_ObjectCategories/<category>/image_NNNN.jpg; BACKGROUND_Google is not a class
    root = tmp_path / 'caltech101' / '101_ObjectCategories'
    for category, n in (('BACKGROUND_Google', 1), ('Faces', 2), ('accordion', 1)):
        for k in range(1, n + 1):
            jpeg(root / category / f'image_{k:04d}.jpg', k, k)
    caltech = load_split('caltech101', tmp_path, classnames=['лицо', 'аккордеон'])
    same_as_loader(caltech, datasets.Caltech101(tmp_path))
    assert caltech.labels == [0, 0, 1] and caltech.metric == 'mean_per_class_recall'
    # FGVC Aircraft: fgvc-aircraft-2013b/data/variants.txt, images_variant_test.txt, images/
    data = tmp_path / 'fgvc-aircraft-2013b' / 'data'
    data.mkdir(parents=True)
    variants = prompts.english_names('fgvc_aircraft')
    (data / 'variants.txt').write_text('\n'.join(variants) + '\n')
    (data / 'images_variant_test.txt').write_text(f'0001 {variants[5]}\n0002 {variants[99]}\n')
    for k in (1, 2):
        jpeg(data / 'images' / f'{k:04d}.jpg', k, k)
    aircraft = load_split('fgvc_aircraft', tmp_path)
    same_as_loader(aircraft, datasets.FGVCAircraft(tmp_path, split='test', annotation_level='variant'))
    assert aircraft.labels == [5, 99] and aircraft.classnames == variants  # Latin names stay Latin
    # Rendered SST2: rendered-sst2/test/{negative,positive}/*.png
    for k, polarity in enumerate(['negative', 'positive', 'positive']):
        jpeg(tmp_path / 'rendered-sst2' / 'test' / polarity / f'{k}.png', k, k)
    sst2 = load_split('renderedsst2', tmp_path)
    same_as_loader(sst2, datasets.RenderedSST2(tmp_path, split='test'))
    assert sst2.labels == [0, 1, 1] and len(sst2.classnames) == 2
    # CLEVR: clevr/CLEVR_v1.0/images/val + scenes/CLEVR_val_scenes.json; classes are 3..10 objects
    clevr = tmp_path / 'clevr' / 'CLEVR_v1.0'
    scenes = [{'image_filename': f'CLEVR_val_{k:06d}.png', 'objects': [{}] * n} for k, n in enumerate([3, 10, 5])]
    for scene in scenes:
        jpeg(clevr / 'images' / 'val' / scene['image_filename'], 1)
    (clevr / 'scenes').mkdir()
    (clevr / 'scenes' / 'CLEVR_val_scenes.json').write_text(json.dumps({'scenes': scenes}))
    counts = load_split('clevr_count', tmp_path)
    same_as_loader(counts, datasets.CLEVRClassification(tmp_path, split='val'), target=lambda n: n - 3)
    assert counts.labels == [0, 7, 2] and len(counts.classnames) == 8
    # ImageNet: meta.bin (as parse_devkit_archive writes it) and val/<wnid>/*.JPEG
    wnids = ['n01440764', 'n01443537']
    torch.save(({wnids[0]: ('tench', 'Tinca tinca'), wnids[1]: ('goldfish', 'Carassius auratus')}, []),
               tmp_path / 'meta.bin')
    for k, wnid in enumerate(wnids + wnids):
        jpeg(tmp_path / 'val' / wnid / f'ILSVRC2012_val_{k:08d}.JPEG', k, k)
    imagenet = load_split('imagenet1k', tmp_path, classnames=prompts.class_names('imagenet1k')[:2])
    same_as_loader(imagenet, datasets.ImageNet(tmp_path, split='val'))
    assert imagenet.classes == ['tench, Tinca tinca', 'goldfish, Carassius auratus']
    # Stanford Cars: devkit/cars_meta.mat, cars_test_annos_withlabels.mat, cars_test/
    savemat = pytest.importorskip('scipy.io').savemat
    cars = tmp_path / 'stanford_cars'
    (cars / 'devkit').mkdir(parents=True)
    names = prompts.english_names('cars')
    savemat(cars / 'devkit' / 'cars_meta.mat', {'class_names': np.array(names, dtype=object)[None, :]})
    annotations = np.array([('00001.jpg', 196), ('00002.jpg', 1)], dtype=[('fname', 'O'), ('class', 'O')])
    savemat(cars / 'cars_test_annos_withlabels.mat', {'annotations': annotations[None, :]})
    for k in (1, 2):
        jpeg(cars / 'cars_test' / f'{k:05d}.jpg', k, k)
    stanford = load_split('cars', tmp_path)
    same_as_loader(stanford, datasets.StanfordCars(tmp_path, split='test'))
    assert stanford.labels == [195, 0] and stanford.classes == names and len(stanford.classnames) == 196


def test_image_folder_csv_jsonl(tmp_path):
    for label, name in enumerate(['кот', 'собака']):
        for k in range(2):
            jpeg(tmp_path / 'photos' / name / f'{k}.png', label, k)
    folder = load_split('imagefolder', tmp_path / 'photos')
    assert folder.classnames == ['кот', 'собака'] and folder.labels == [0, 0, 1, 1]
    assert load_split('imagefolder', tmp_path / 'photos', classnames=['кошка', 'пес']).classnames == ['кошка', 'пес']
    (tmp_path / 'labels.csv').write_text('image,label\nphotos/кот/0.png,кот\nphotos/собака/1.png,собака\n'
                                         'photos/кот/1.png,кот\n', encoding='utf-8')
    table = load_split('csv', tmp_path / 'labels.csv')
    assert table.labels == [0, 1, 0] and table.classnames == ['кот', 'собака']
    assert table.images[1] == str(tmp_path / 'photos' / 'собака' / '1.png')
    rows = [{'image': 'photos/кот/0.png', 'caption': ['рыжий кот', 'кот спит']},
            {'image': 'photos/собака/0.png', 'caption': 'собака бежит'},
            {'image': 'photos/кот/0.png', 'caption': 'кот на диване'}]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    (tmp_path / 'captions.jsonl').write_text('\n'.join(lines), encoding='utf-8')
    captions = load_split('jsonl', tmp_path / 'captions.jsonl')
    assert captions.captions == [['рыжий кот', 'кот спит', 'кот на диване'], ['собака бежит']]
    assert captions.labels is None and len(captions) == 2
    (tmp_path / 'bad.jsonl').write_text('{"picture": "a.png", "label": 1}\n')
    with pytest.raises(ValueError, match='"image" column'):
        load_split('jsonl', tmp_path / 'bad.jsonl')
    with pytest.raises(ValueError, match='1 class names for 2 classes'):
        load_split('csv', tmp_path / 'labels.csv', classnames=['кошка'])
    (tmp_path / 'ints.csv').write_text('image,label\nphotos/кот/0.png,2\n')
    with pytest.raises(ValueError, match='no class names'):
        load_split('csv', tmp_path / 'ints.csv')


def write_wds(root, samples, split='test', shard_size=2, retrieval=False):
    """CLIP_benchmark's layout: <split>/nshards.txt and 0.tar, 1.tar ...; key.png + key.cls (or key.txt)."""
    (root / split).mkdir(parents=True)
    shards = [samples[i:i + shard_size] for i in range(0, len(samples), shard_size)]
    (root / split / 'nshards.txt').write_text(str(len(shards)))
    for n, shard in enumerate(shards):
        with tarfile.open(root / split / f'{n}.tar', 'w') as archive:
            for key, image, target in shard:
                for name, data in ((f'{key}.png', image), (f'{key}.{"txt" if retrieval else "cls"}', target.encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, __import__('io').BytesIO(data))


def png_bytes(label, seed):
    import io
    buffer = io.BytesIO()
    colour_image(label, seed, size=12).save(buffer, format='PNG')
    return buffer.getvalue()


def test_webdataset_folder_classification_and_retrieval(tmp_path):
    samples = [(f's{k:04d}', png_bytes(k % 3, k), str(k % 3)) for k in range(5)]
    write_wds(tmp_path / 'cifar', samples)
    (tmp_path / 'cifar' / 'classnames.txt').write_text('самолет\nавтомобиль\nптица\n', encoding='utf-8')
    (tmp_path / 'cifar' / 'zeroshot_classification_templates.txt').write_text('фото: {c}.\n', encoding='utf-8')
    split = load_split('wds/cifar10', tmp_path / 'cifar')
    assert split.labels == [0, 1, 2, 0, 1] and split.classnames == ['самолет', 'автомобиль', 'птица']
    assert split.templates == ['фото: {}.'] and split.images[4] == samples[4][1]
    write_wds(tmp_path / 'flickr', [(f'k{k}', png_bytes(k, k), f'кот {k}\nещё кот {k}') for k in range(3)],
              retrieval=True)
    (tmp_path / 'flickr' / 'dataset_type.txt').write_text('retrieval\n')
    captions = load_split('wds', tmp_path / 'flickr')
    assert captions.captions[2] == ['кот 2', 'ещё кот 2'] and captions.labels is None
    with pytest.raises(FileNotFoundError, match='nshards.txt'):
        load_split('wds', tmp_path / 'flickr', split='train')


def test_hateful_memes_and_birdsnap_local_copies(tmp_path):
    rows = [{'id': k, 'img': f'img/{k:05d}.png', 'label': k % 2, 'text': 'мем'} for k in range(4)]
    for row in rows:
        jpeg(tmp_path / 'memes' / row['img'], row['label'])
    (tmp_path / 'memes' / 'dev_seen.jsonl').write_text('\n'.join(json.dumps(r) for r in rows))
    memes = load_split('hateful_memes', tmp_path / 'memes')
    assert memes.labels == [0, 1, 0, 1] and memes.metric == 'roc_auc' and memes.split == 'dev_seen'
    assert len(memes.classnames) == 2
    species = prompts.english_names('birdsnap')
    for k, name in enumerate([species[499], species[3]]):
        jpeg(tmp_path / 'birds' / 'test' / name.replace(' ', '_') / '0.jpg', k)
    birds = load_split('birdsnap', tmp_path / 'birds')
    assert sorted(birds.labels) == [3, 499] and len(birds.classnames) == 500
    (tmp_path / 'birds' / 'test' / 'Dodo').mkdir()
    jpeg(tmp_path / 'birds' / 'test' / 'Dodo' / '0.jpg')
    with pytest.raises(ValueError, match='Dodo'):
        load_split('birdsnap', tmp_path / 'birds')


def test_unknown_or_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'cifar11'.*cifar10"):
        load_split('cifar11', tmp_path)
    with pytest.raises(FileNotFoundError, match='food101 .test. not found'):
        load_split('food101', tmp_path)
    assert set(DATASETS) | {'hateful_memes', 'birdsnap'} == set(prompts.shipped_stems())


@pytest.mark.parametrize('kind, text, named', [
    ('csv', 'image,label\na.png,кот\nb.png\nc.png,\n,собака\n', ['line 3 (label)', 'line 4 (label)', 'line 5 (image)']),
    ('jsonl', '{"image": "a.png", "label": "кот"}\n{"image": "b.png"}\n{"image": "c.png", "label": null}\n'
              '{"label": "кот", "image": ""}\n', ['line 2 (label)', 'line 3 (label)', 'line 4 (image)']),
    ('jsonl', '{"image": "a.png", "caption": "кот"}\n{"image": "b.png", "caption": null}\n',
     ['line 2 (caption)']),
])
def test_table_rows_without_a_label_or_image_are_refused_by_line(tmp_path, kind, text, named):
    """Not a class called "None" (nor ""): every row lacking a value is named by its line."""
    (tmp_path / f'rows.{kind}').write_text(text, encoding='utf-8')
    with pytest.raises(ValueError, match=f'{len(named)} rows lack a value') as error:
        load_split(kind, tmp_path / f'rows.{kind}')
    assert all(line in str(error.value) for line in named), str(error.value)
