"""The shared Russian benchmarks' loaders, each on a tiny copy of its real on-disk layout."""
import json
import os
import shutil

import pytest

from benchmark_layouts import (BABEL_CLASSES, XM3600_ROWS, write_babel_imagenet, write_coco_sm, write_xm3600,
                               write_xm3600_parquet, write_xtd10)
from helpers.eval_data import CLASSNAMES
from ruclip.evaluation import benchmarks, load_split


def test_xm3600_clip_benchmark_form_keeps_the_first_russian_caption(tmp_path):
    root = write_xm3600(tmp_path / 'xm3600')
    split = load_split('xm3600', root)
    assert split.captions == [[captions[0]] for _, captions in XM3600_ROWS]
    assert split.images == [str(root / 'images' / f'{key}.jpg') for key, _ in XM3600_ROWS]
    assert split.labels is None and split.split == 'test'


def test_xm3600_names_a_missing_image(tmp_path):
    root = write_xm3600(tmp_path / 'xm3600')
    os.remove(root / 'images' / 'c3.jpg')
    with pytest.raises(FileNotFoundError, match=r'1 of 4 images are missing \(first: .*c3.jpg\)'):
        load_split('xm3600', root)


def test_xm3600_refuses_a_row_without_russian_captions(tmp_path):
    root = write_xm3600(tmp_path / 'xm3600')
    with open(root / 'captions.jsonl', 'a', encoding='utf-8') as file:
        file.write(json.dumps({'image/key': 'e5', 'en': {'caption': ['x']}}) + '\n')
    with pytest.raises(ValueError, match='line 5'):
        load_split('xm3600', root)


def test_xm3600_mteb_parquet_form_keeps_every_caption_and_only_russian(tmp_path):
    root = write_xm3600_parquet(tmp_path / 'hub')
    split = load_split('xm3600_mteb', root)
    assert split.captions == [captions for _, captions in XM3600_ROWS]
    assert len(split.images) == 4 and all(isinstance(image, bytes) for image in split.images)
    one_file = load_split('xm3600_mteb', root / 'data' / 'ru-00000-of-00001.parquet')
    assert one_file.captions == split.captions


def test_xm3600_mteb_without_the_russian_split_says_what_it_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match='ru-\\*.parquet'):
        load_split('xm3600_mteb', tmp_path)


def test_xtd10_pairs_names_and_captions_line_for_line(tmp_path):
    root = write_xtd10(tmp_path / 'xtd10')
    split = load_split('xtd10', root)
    assert split.captions == [[f'{word} квадрат'] for word in CLASSNAMES]
    assert os.path.basename(split.images[2]) == 'COCO_train2014_000000000002.jpg'
    (root / 'test_1kcaptions_ru.txt').write_text('одна подпись\n', encoding='utf-8')
    with pytest.raises(ValueError, match='4 image names but 1 captions'):
        load_split('xtd10', root)


def test_coco_sm_reads_each_translation_with_its_english_reference(tmp_path):
    root = write_coco_sm(tmp_path / 'coco_sm', translations=('google', 'nllb'))
    split = load_split('coco_sm', root)
    assert split.split == 'google'
    assert split.captions[1] == [f'{CLASSNAMES[1]} квадрат', f'{CLASSNAMES[1]} фон']
    assert split.reference_captions[1] == ['a green square', 'a green background']
    assert load_split('coco_sm', root, 'nllb').split == 'nllb'
    with pytest.raises(FileNotFoundError, match='bing.json'):
        load_split('coco_sm', root, 'bing')
    with pytest.raises(ValueError, match="one of \\['google', 'bing', 'nllb'\\]"):
        load_split('coco_sm', root, 'deepl')


def test_coco_sm_refuses_russian_and_english_that_do_not_pair_up(tmp_path):
    root = write_coco_sm(tmp_path / 'coco_sm', translations=('google',))
    meta = json.loads((root / 'meta' / 'google.json').read_text(encoding='utf-8'))
    meta['ru'][0]['captions'].append('лишняя подпись')
    (root / 'meta' / 'google.json').write_text(json.dumps(meta, ensure_ascii=False), encoding='utf-8')
    with pytest.raises(ValueError, match='do not pair up'):
        load_split('coco_sm', root)


def test_babel_imagenet_takes_the_russian_classes_in_the_files_order(tmp_path):
    root = write_babel_imagenet(tmp_path)
    split = load_split('babel_imagenet', root)
    assert split.classnames == CLASSNAMES
    assert split.templates == ['фото  {} .', 'картинка с {}']
    assert split.labels == [0, 0, 1, 1, 2, 2, 3, 3]  # class 3 of ImageNet has no Russian label: left out
    wnid_of = {os.path.basename(os.path.dirname(path)) for path in split.images}
    assert wnid_of == {f'n{index:08d}' for index in BABEL_CLASSES}
    label_only = load_split('babel_imagenet_label', root)
    assert label_only.templates == ['{}'] and label_only.labels == split.labels


def test_babel_imagenet_names_a_missing_class_folder(tmp_path):
    root = write_babel_imagenet(tmp_path)
    for name in os.listdir(root / 'val' / 'n00000500'):
        os.remove(root / 'val' / 'n00000500' / name)
    os.rmdir(root / 'val' / 'n00000500')
    with pytest.raises(FileNotFoundError, match='n00000500'):
        load_split('babel_imagenet', root)


def test_babel_imagenet_falls_back_to_clip_benchmarks_copy_of_the_labels(tmp_path):
    pytest.importorskip('clip_benchmark')
    path = benchmarks._babel_file(str(tmp_path), 'babel_imagenet.json', download=False)
    russian = json.load(open(path, encoding='utf-8'))['RU']
    assert len(russian[0]) == 748 == len(russian[1])  # the paper's Russian class count


def test_unknown_benchmark_split_is_refused(tmp_path):
    root = write_xtd10(tmp_path / 'xtd10')
    with pytest.raises(ValueError, match="one split, 'test'"):
        load_split('xtd10', root, 'train')


def _serve(folder):
    """file:// URL of a folder, ending in '/': urllib fetches it as it would the sources' https URLs."""
    return folder.resolve().as_uri() + '/'


def _archive(source_root, names, path):
    """A .zip or .tar.gz at path holding source_root/<name> for each name, under those names."""
    import tarfile
    import zipfile
    if path.name.endswith('.zip'):
        with zipfile.ZipFile(path, 'w') as archive:
            for name in names:
                top = source_root / name
                files = sorted(top.rglob('*')) if top.is_dir() else [top]
                for file in files:
                    archive.write(file, str(file.relative_to(source_root)))
    else:
        with tarfile.open(path, 'w:gz') as archive:
            for name in names:
                archive.add(source_root / name, name)


def test_download_fetches_xm3600_and_xtd10_from_their_sources(tmp_path, monkeypatch):
    sources = tmp_path / 'sources'
    sources.mkdir()
    made = write_xm3600(tmp_path / 'made-xm3600')
    _archive(made, ['captions.jsonl'], sources / 'captions.zip')
    _archive(made / 'images', sorted(os.listdir(made / 'images')), sources / 'images.tgz')
    made_xtd = write_xtd10(tmp_path / 'made-xtd10')
    for name in ('test_image_names.txt', 'test_1kcaptions_ru.txt'):
        (sources / name).write_bytes((made_xtd / name).read_bytes())
    _archive(made_xtd, ['images'], sources / 'images.tar.gz')
    monkeypatch.setattr(benchmarks, 'XM3600_CAPTIONS_URL', _serve(sources) + 'captions.zip')
    monkeypatch.setattr(benchmarks, 'XM3600_IMAGES_URL', _serve(sources) + 'images.tgz')
    monkeypatch.setattr(benchmarks, 'XTD10_FILES_URL', _serve(sources))
    monkeypatch.setattr(benchmarks, 'XTD10_IMAGES_URL', _serve(sources) + 'images.tar.gz')

    xm3600 = load_split('xm3600', tmp_path / 'xm3600', download=True)
    assert xm3600.captions == load_split('xm3600', made).captions
    assert sorted(os.listdir(tmp_path / 'xm3600')) == ['captions.jsonl', 'images']  # the archives are gone
    xtd = load_split('xtd10', tmp_path / 'xtd10', download=True)
    assert xtd.captions == load_split('xtd10', made_xtd).captions and len(xtd.images) == 4


def test_download_fetches_coco_sm_and_babel_imagenet_files(tmp_path, monkeypatch):
    sources = tmp_path / 'sources'
    made = write_coco_sm(tmp_path / 'made', translations=('nllb',))
    (sources / 'meta').mkdir(parents=True)
    (sources / 'meta' / 'nllb.json').write_bytes((made / 'meta' / 'nllb.json').read_bytes())
    _archive(made, ['val2014'], sources / 'val2014.zip')
    (tmp_path / 'babel-made').mkdir()
    babel = write_babel_imagenet(tmp_path / 'babel-made')
    for name in ('babel_imagenet.json', 'nllb_dist13b_prompts.json'):
        (sources / name).write_bytes((babel / name).read_bytes())
    monkeypatch.setattr(benchmarks, 'COCO_SM_META_URL', _serve(sources / 'meta'))
    monkeypatch.setattr(benchmarks, 'COCO_IMAGES_URL', _serve(sources) + 'val2014.zip')
    monkeypatch.setattr(benchmarks, 'BABEL_DATA_URL', _serve(sources))

    coco = load_split('coco_sm', tmp_path / 'coco_sm', 'nllb', download=True)
    assert coco.captions == load_split('coco_sm', made, 'nllb').captions
    imagenet = tmp_path / 'imagenet'
    shutil.copytree(babel, imagenet, ignore=shutil.ignore_patterns('*.json'))  # ImageNet itself is never downloaded
    assert load_split('babel_imagenet', imagenet, download=True).classnames == CLASSNAMES
    assert os.path.isfile(imagenet / 'babel_imagenet.json')


def test_a_failed_download_leaves_no_partial_file(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmarks, 'XTD10_FILES_URL', _serve(tmp_path / 'nowhere'))
    with pytest.raises(OSError):
        load_split('xtd10', tmp_path / 'xtd10', download=True)
    assert not os.path.exists(tmp_path / 'xtd10' / 'test_image_names.txt')
    assert [name for name in os.listdir(tmp_path / 'xtd10')] == []
