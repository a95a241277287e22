"""The shipped Russian class names and templates: complete, in the loaders' order, usable as prompts,
and exportable as CLIP_benchmark's custom files."""
import json
import string

import pytest

from ruclip.evaluation import prompts

CLASS_COUNTS = {'cifar10': 10, 'cifar100': 100, 'imagenet1k': 1000, 'food101': 101, 'sun397': 397, 'cars': 196,
                'fgvc_aircraft': 100, 'dtd': 47, 'pets': 37, 'caltech101': 101, 'flowers102': 102, 'stl10': 10,
                'mnist': 10, 'pcam': 2, 'renderedsst2': 2, 'clevr_count': 8, 'hateful_memes': 2, 'birdsnap': 500}
# class orders the loaders take from the data files (CIFAR's batches.meta, STL10's class_names.txt)
FILE_ORDERS = {
    'cifar10': ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'],
    'stl10': ['airplane', 'bird', 'car', 'cat', 'deer', 'dog', 'horse', 'monkey', 'ship', 'truck'],
}


def test_every_dataset_of_the_table_has_names_and_templates():
    assert prompts.shipped_stems() == sorted(CLASS_COUNTS)
    for stem, n in CLASS_COUNTS.items():
        russian, english = prompts.class_names(stem), prompts.english_names(stem)
        assert len(russian) == len(english) == n, stem
        assert len(set(russian)) == n, f'{stem}: duplicate Russian names'
        for template in prompts.templates(stem):
            fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
            assert fields == [''], f'{stem}: {template!r} needs exactly one {{}}'
            words = template.replace('{}', '').strip(' .,:;!?"«»-')
            assert not words or any('а' <= c <= 'я' for c in words.lower()), f'{stem}: {template!r} is not Russian'


def test_russian_is_russian_except_latin_model_names():
    for stem in CLASS_COUNTS:
        if stem in ('cars', 'fgvc_aircraft', 'mnist', 'clevr_count'):
            continue
        russian = prompts.class_names(stem)
        latin = [i for i, name in enumerate(russian) if not any('а' <= c <= 'я' or c == 'ё' for c in name.lower())]
        if stem == 'birdsnap':  # PROVENANCE.md: 193 species with no established Russian name keep the English one
            assert len(latin) == 193 and all(russian[i] == prompts.english_names(stem)[i] for i in latin)
        else:
            assert len(latin) <= 0.1 * CLASS_COUNTS[stem], f'{stem}: {len(latin)} names not in Cyrillic'
    assert prompts.class_names('fgvc_aircraft') == prompts.english_names('fgvc_aircraft')  # Latin stays Latin


def test_orders_match_torchvision_where_it_hardcodes_them():
    datasets = pytest.importorskip('torchvision.datasets')
    flowers = list(zip(datasets.Flowers102.classes, prompts.english_names('flowers102')))
    assert len(flowers) == 102
    # the same order; CLIP's list (which CLIP_benchmark and ours follow) corrects three of torchvision's names
    assert [(a, b) for a, b in flowers if a.lower() != b] == [
        ('globe-flower', 'globe flower'), ('pink-yellow dahlia?', 'pink and yellow dahlia'), ('ball moss', 'air plant')]
    assert len(datasets.MNIST.classes) == 10
    assert [c.split(' - ')[0] for c in datasets.MNIST.classes] == prompts.english_names('mnist')
    for stem, order in FILE_ORDERS.items():
        assert prompts.english_names(stem) == order
    assert prompts.english_names('renderedsst2') == ['negative', 'positive']  # RenderedSST2.classes' order
    assert prompts.english_names('clevr_count') == ['three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten']
    english = prompts.english_names('cifar100')
    assert english == sorted(english)  # CIFAR-100's fine labels are alphabetical


def test_clip_benchmark_custom_files(tmp_path):
    paths = prompts.write_clip_benchmark_files(tmp_path)
    names = json.loads(open(paths['classnames'], encoding='utf-8').read())
    templates = json.loads(open(paths['templates'], encoding='utf-8').read())
    assert names['cifar10'] == prompts.class_names('cifar10')
    assert names['vtab/flowers'] == prompts.class_names('flowers102')
    assert all('{c}' in t and '{}' not in t for t in templates['imagenet1k'])
    assert [t.format(c='кот') for t in templates['dtd']] == [t.format('кот') for t in prompts.templates('dtd')]


def test_unknown_stem_names_the_shipped_ones():
    with pytest.raises(ValueError, match="no shipped classnames for dataset 'cifar11'.*cifar10"):
        prompts.class_names('cifar11')
