"""Photo-like large pictures for the photo-library tests and benchmarks: smooth gradients, a few
shapes with sharp edges, and sensor-like noise, at phone sizes (12 MP is 4032 x 3024)."""
import shutil

import numpy as np
from PIL import Image, ImageChops, ImageDraw

PHONE_12MP = (4032, 3024)
NOISE_TILE = 509


def photo_like(width: int, height: int, seed: int) -> Image.Image:
    """An RGB picture: a smooth two-colour gradient lit from a random side, 6 to 12 filled ellipses and
    rectangles of random colours, and Gaussian noise (sigma 6) as a phone's sensor leaves."""
    rng = np.random.default_rng(seed)
    scale = 4  # the smooth parts are drawn at a quarter of the size, then enlarged (fast at 12 MP)
    w, h = -(-width // scale), -(-height // scale)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * x / w + np.sin(angle) * y / h + 1) / 2  # [h, w] in about 0..1
    top, bottom = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    base = top * ramp[..., None] + bottom * (1 - ramp[..., None])
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 13))):
        x0, x1 = sorted(rng.uniform(0, width, size=2))
        y0, y1 = sorted(rng.uniform(0, height, size=2))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    # noise drawn for a NOISE_TILE-pixel square, tiled (fast at 12 MP; the period falls on no 8 x 8 block grid)
    patch = Image.fromarray(np.clip(rng.normal(128, 6, size=(NOISE_TILE, NOISE_TILE, 3)), 0, 255).astype(np.uint8))
    noise = Image.new('RGB', (width, height))
    for top in range(0, height, NOISE_TILE):
        for left in range(0, width, NOISE_TILE):
            noise.paste(patch, (left, top))
    return ImageChops.add(image, noise, scale=1.0, offset=-128)


def write_photo(path, width: int = PHONE_12MP[0], height: int = PHONE_12MP[1], seed: int = 0,
                quality: int = 90) -> str:
    """A photo_like JPEG at `path` (as a phone saves it: quality 90, 4:2:0); returns str(path)."""
    photo_like(width, height, seed).save(path, quality=quality)
    return str(path)


def write_near_duplicates(folder) -> None:
    """Into `folder` (made): a drawn picture (original.jpg), its half-size resize (small.jpg) and its re-save at
    quality 60 (resaved.jpg), which group as near-duplicates; another picture (other.jpg); and a third
    (third.png) with an exact copy (third copy.png)."""
    folder.mkdir(parents=True, exist_ok=True)
    picture = photo_like(640, 480, seed=11)
    picture.save(folder / 'original.jpg', quality=95)
    picture.resize((320, 240)).save(folder / 'small.jpg', quality=95)
    picture.save(folder / 'resaved.jpg', quality=60)
    photo_like(640, 480, seed=12).save(folder / 'other.jpg', quality=95)
    photo_like(500, 400, seed=13).save(folder / 'third.png')
    shutil.copy(folder / 'third.png', folder / 'third copy.png')


def exif(taken: str = None, offset: str = None, camera: str = None, gps=None) -> Image.Exif:
    """EXIF to save with a picture: taken 'YYYY:MM:DD HH:MM:SS' (DateTimeOriginal), offset '+03:00'
    (OffsetTimeOriginal), camera (Model), gps (latitude, longitude) in degrees."""
    data = Image.Exif()
    if camera:
        data[0x0110] = camera
    details = data.get_ifd(0x8769)
    if taken:
        details[0x9003] = taken
    if offset:
        details[0x9011] = offset
    if gps:
        latitude, longitude = gps
        place = data.get_ifd(0x8825)
        place.update({1: 'N' if latitude >= 0 else 'S', 2: _dms(abs(latitude)),
                      3: 'E' if longitude >= 0 else 'W', 4: _dms(abs(longitude))})
    return data


def _dms(degrees: float):
    whole = int(degrees)
    minutes = int((degrees - whole) * 60)
    seconds = round(((degrees - whole) * 60 - minutes) * 60, 4)
    return (float(whole), float(minutes), seconds)
