"""Deterministic test images: many PIL modes, sizes and aspect ratios, smooth content plus noise."""
import io

import numpy as np
from PIL import Image

SIZES = [(640, 480), (480, 640), (224, 224), (225, 224), (224, 225), (385, 384), (1000, 60), (60, 1000),
         (301, 299), (7, 3), (1, 1), (2, 1)]
MODES = ['L', 'LA', 'P', 'PA', 'RGBA', 'CMYK', 'YCbCr', 'I;16', 'I', 'F', '1', 'RGBX', 'HSV']


def rgb_array(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 2 * np.pi, size=3)
    smooth = np.stack([np.sin(x / (5 + 7 * c) + y / (9 + 3 * c) + phase[c]) for c in range(3)], axis=-1)
    pixels = 127.5 + 90 * smooth + rng.normal(0, 25, size=(height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def rgb_image(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(rgb_array(width, height, seed))


def in_mode(image: Image.Image, mode: str, seed: int = 0) -> Image.Image:
    if mode == 'I;16':
        return Image.fromarray((np.asarray(image.convert('L'), dtype=np.uint16) * 257))
    if mode == 'I':
        return Image.fromarray(np.asarray(image.convert('L'), dtype=np.int32) * 3 - 100)
    if mode == 'F':
        return Image.fromarray(np.asarray(image.convert('L'), dtype=np.float32) * 1.7 - 20)
    if mode == 'P':
        return image.quantize(64, dither=Image.Dither.NONE)
    if mode == 'PA':
        rgba = image.convert('RGBA')
        alpha = np.random.default_rng(seed).integers(0, 256, size=image.size[::-1], dtype=np.uint8)
        rgba.putalpha(Image.fromarray(alpha))
        return rgba.convert('P').convert('PA')
    if mode in ('LA', 'RGBA'):
        converted = image.convert(mode)
        alpha = np.random.default_rng(seed).integers(0, 256, size=image.size[::-1], dtype=np.uint8)
        converted.putalpha(Image.fromarray(alpha))
        return converted
    return image.convert(mode)


def varied_images():
    """(description, image) pairs: every size in RGB, every mode at two sizes, and JPEG/PNG round trips."""
    cases = [(f'RGB {w}x{h}', rgb_image(w, h, seed=i)) for i, (w, h) in enumerate(SIZES)]
    for i, mode in enumerate(MODES):
        for w, h in [(333, 250), (97, 131)]:
            cases.append((f'{mode} {w}x{h}', in_mode(rgb_image(w, h, seed=100 + i), mode, seed=i)))
    for fmt in ('JPEG', 'PNG'):
        buffer = io.BytesIO()
        rgb_image(320, 200, seed=7).save(buffer, format=fmt)
        cases.append((f'{fmt} file', Image.open(io.BytesIO(buffer.getvalue()))))
    return cases


def encoded(image: Image.Image, fmt: str = 'PNG') -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()
