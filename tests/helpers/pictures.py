"""Pictures a test can learn from: coloured shapes on noisy backgrounds, with Russian captions."""
import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {'красный': (220, 30, 30), 'зелёный': (30, 180, 40), 'синий': (30, 60, 220), 'жёлтый': (230, 210, 20)}
SHAPES = ('круг', 'квадрат', 'треугольник')
CLASSES = [f'{colour} {shape}' for colour in COLOURS for shape in SHAPES]


def draw(colour: str, shape: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """One picture of a `colour` `shape` of random size and place, on grey noise."""
    background = rng.integers(90, 170, size=(size, size, 1)) + rng.integers(-20, 20, size=(size, size, 3))
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    side = int(rng.integers(size // 3, size * 2 // 3))
    left, top = (int(v) for v in rng.integers(0, size - side, size=2))
    box = (left, top, left + side, top + side)
    fill = tuple(int(np.clip(c + rng.integers(-25, 25), 0, 255)) for c in COLOURS[colour])
    pen = ImageDraw.Draw(image)
    if shape == 'круг':
        pen.ellipse(box, fill=fill)
    elif shape == 'квадрат':
        pen.rectangle(box, fill=fill)
    else:
        pen.polygon([(left, top + side), (left + side, top + side), (left + side // 2, top)], fill=fill)
    return image


def write_pictures(folder, per_class: int, seed: int, classes=CLASSES):
    """per_class PNG files of each class in `folder`; returns [(relative path, caption)]."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for number, caption in enumerate(classes):
        colour, shape = caption.split(' ')
        for i in range(per_class):
            name = f'{number:02d}_{i:03d}.png'
            draw(colour, shape, rng).save(folder / name)
            rows.append((name, caption))
    return rows


def write_table(folder, per_class: int, seed: int, kind: str = 'csv', classes=CLASSES) -> Path:
    """A table (csv or jsonl) of image_path, caption beside its pictures in `folder`."""
    rows = write_pictures(Path(folder) / 'images', per_class, seed, classes)
    path = Path(folder) / f'pairs.{kind}'
    if kind == 'csv':
        with open(path, 'w', newline='', encoding='utf-8') as file:
            writer = csv.writer(file)
            writer.writerow(['image_path', 'caption'])
            writer.writerows((f'images/{name}', caption) for name, caption in rows)
    else:
        path.write_text(''.join(json.dumps(dict(image_path=f'images/{name}', caption=caption), ensure_ascii=False)
                                + '\n' for name, caption in rows), encoding='utf-8')
    return path


def write_image_folder(folder, per_class: int, seed: int, classes=CLASSES) -> Path:
    """An ImageFolder: one subfolder per class, named by its caption with '_' for spaces."""
    rng = np.random.default_rng(seed)
    for caption in classes:
        colour, shape = caption.split(' ')
        sub = Path(folder) / caption.replace(' ', '_')
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(colour, shape, rng).save(sub / f'{i:03d}.png')
    return Path(folder)
