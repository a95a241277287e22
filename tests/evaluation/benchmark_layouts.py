"""Tiny copies of the shared Russian benchmarks, in the layouts their publishers leave on disk
(see ruclip/evaluation/benchmarks.py): a few images each, the captions or labels made up."""
import io
import json

from PIL import Image

from helpers.eval_data import COLOURS, colour_image

# per image: (key, its Russian captions); the first caption is the one CLIP_benchmark keeps
XM3600_ROWS = [('a1', ['красный квадрат', 'алый фон']), ('b2', ['зеленый квадрат']),
               ('c3', ['синий квадрат', 'синее поле', 'голубой фон']), ('d4', ['желтый квадрат', 'лимонный цвет'])]


def jpeg(label: int, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    colour_image(label, seed).save(buffer, format='JPEG', quality=95)
    return buffer.getvalue()


def write_xm3600(root):
    """CLIP_benchmark's dataset_root/xm3600: captions.jsonl (Google's file) and images/<key>.jpg."""
    (root / 'images').mkdir(parents=True)
    with open(root / 'captions.jsonl', 'w', encoding='utf-8') as file:
        for label, (key, captions) in enumerate(XM3600_ROWS):
            row = {'image/key': key, 'image/locale': 'ru', 'en': {'caption': [f'english {key}']},
                   'ru': {'caption': captions, 'caption/tokenized': captions}}
            file.write(json.dumps(row, ensure_ascii=False) + '\n')
            (root / 'images' / f'{key}.jpg').write_bytes(jpeg(label))
    return root


def write_xm3600_parquet(root):
    """The Hub dataset floschne/xm3600's Russian split: data/ru-00000-of-00001.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    (root / 'data').mkdir(parents=True)
    table = pa.table({
        'image_id': [key for key, _ in XM3600_ROWS],
        'image': [{'bytes': jpeg(label), 'path': f'{key}.jpg'} for label, (key, _) in enumerate(XM3600_ROWS)],
        'captions': [captions for _, captions in XM3600_ROWS],
        'captions_tokenized': [captions for _, captions in XM3600_ROWS],
        'captions_tokenized_lowercase': [[c.lower() for c in captions] for _, captions in XM3600_ROWS],
        'image_locale': ['ru'] * len(XM3600_ROWS),
    })
    pq.write_table(table, root / 'data' / 'ru-00000-of-00001.parquet')
    # another language's split beside it, which must not be read
    pq.write_table(table.slice(0, 1), root / 'data' / 'en-00000-of-00001.parquet')
    return root


def write_xtd10(root):
    """The XTD10 repository's two files beside CLIP_benchmark's images/ folder."""
    (root / 'images').mkdir(parents=True)
    names = [f'COCO_train2014_{i:012d}.jpg' for i in range(len(COLOURS))]
    (root / 'test_image_names.txt').write_text('\n'.join(names) + '\n')
    (root / 'test_1kcaptions_ru.txt').write_text('\n'.join(f'{word} квадрат' for _, word in COLOURS) + '\n',
                                                  encoding='utf-8')
    for label, name in enumerate(names):
        (root / 'images' / name).write_bytes(jpeg(label))
    return root


def write_coco_sm(root, translations=('google', 'bing', 'nllb')):
    """The coco-sm repository's meta/<translation>.json (language -> [{filename, captions}]) and val2014/."""
    (root / 'meta').mkdir(parents=True)
    (root / 'val2014').mkdir()
    english = ['red', 'green', 'blue', 'yellow']
    for label in range(len(COLOURS)):
        (root / 'val2014' / f'COCO_val2014_{label:012d}.jpg').write_bytes(jpeg(label))
    for translation in translations:
        meta = {lang: [{'filename': f'COCO_val2014_{label:012d}.jpg',
                        'captions': [f'{word} квадрат', f'{word} фон'] if lang == 'ru' else
                        [f'a {english[label]} square', f'a {english[label]} background']}
                       for label, (_, word) in enumerate(COLOURS)] for lang in ('en', 'ru', 'de')}
        (root / 'meta' / f'{translation}.json').write_text(json.dumps(meta, ensure_ascii=False), encoding='utf-8')
    return root


BABEL_CLASSES = [7, 42, 500, 999]  # ImageNet indices with a Russian label, in the file's order


def write_babel_imagenet(root, per_class: int = 2):
    """ImageNet as torchvision extracts it (meta.bin of 1000 wnids, val/<wnid>/), and the
    Babel-ImageNet repository's babel_imagenet.json and nllb_dist13b_prompts.json."""
    import torch
    wnids = [f'n{index:08d}' for index in range(1000)]
    torch.save(({wnid: (f'class {i}',) for i, wnid in enumerate(wnids)}, []), root / 'meta.bin')
    for position, index in enumerate(BABEL_CLASSES):
        folder = root / 'val' / wnids[index]
        folder.mkdir(parents=True)
        for i in range(per_class):
            colour_image(position, seed=i).save(folder / f'ILSVRC2012_val_{index:05d}{i}.JPEG', quality=95)
    (root / 'val' / wnids[3]).mkdir()  # a class without a Russian label: not read
    colour_image(0, 9).save(root / 'val' / wnids[3] / 'x.JPEG')
    labels = [word for _, word in COLOURS]
    (root / 'babel_imagenet.json').write_text(json.dumps({'RU': [BABEL_CLASSES, labels], 'DE': [[1], ['rot']]},
                                                         ensure_ascii=False), encoding='utf-8')
    prompts = {'RU': ['фото  {} .', 'картинка с {}'], 'DE': ['ein Foto von {}']}
    (root / 'nllb_dist13b_prompts.json').write_text(json.dumps(prompts, ensure_ascii=False), encoding='utf-8')
    return root


def pil(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))
