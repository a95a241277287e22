"""Synthetic photographs for image tests: smooth colour fields with sharp-edged discs, any size."""
import numpy as np
from PIL import Image, ImageDraw

# square, landscape, portrait, tiny, panorama, and sides one pixel apart
SIZES = [(224, 224), (500, 500), (640, 480), (480, 640), (300, 200), (131, 97), (1000, 300), (225, 224)]


def scene(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    field = np.stack([np.sin(6 * x + seed), np.cos(5 * y + 2 * x), np.sin(3 * (x + y) + seed / 2)], -1)
    image = Image.fromarray(((field * 0.5 + 0.5) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        cx, cy = rng.randint(0, width), rng.randint(0, height)
        r = rng.randint(max(2, min(width, height) // 20), max(3, min(width, height) // 4))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(v) for v in rng.randint(0, 256, 3)))
    return image


def scenes(n: int, seed: int = 0) -> list:
    """n scenes cycling through SIZES."""
    return [scene(*SIZES[k % len(SIZES)], seed=seed + k) for k in range(n)]
