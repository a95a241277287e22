"""Reading one image and turning it into the model's pixel_values, pixel-for-pixel as the original
(finding image files in folders is image_files.py's).

The policy, wherever ruclip reads an image (Predictor, RuCLIPProcessor, embed_images, classify,
rank, plots, the command line):
- A file or bytes is read by open_image: it is turned the way its EXIF Orientation tag says (phone
  photos come out the right way up), and refused, before it is decoded, when it has more pixels
  than PIL.Image.MAX_IMAGE_PIXELS (where PIL itself only warns up to twice the limit), so it is
  skipped with a warning where files are skipped. A PIL image given as such is taken as it is, as
  the original takes it: its orientation is the caller's (PIL.ImageOps.exif_transpose turns it).
- 16-bit and wider modes are scaled to 8 bits, never clipped to white (see to_8bit).
- HEIC/HEIF files are read through pillow-heif and AVIF through Pillow (11.3 or later) or
  pillow-avif-plugin, when installed (`pip install 'ruclip[photos]'`); where a reader is missing,
  image_files.find_images names the files it cannot read and how to fix it (never leaves them out
  silently).
"""
import io
import os
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ._checks import three_numbers

MAX_DRAFT_REDUCTION = 4
DRAFT_SIDE_FACTOR = 2  # a model reading JPEGs in draft mode asks for both sides at least this times its input side
JPEG_DRAFT_POLICY = f'sides>={DRAFT_SIDE_FACTOR}x,scale>=1/{MAX_DRAFT_REDUCTION}'  # recorded in the model identity
EXIF_ORIENTATION = 0x0112
# formats Pillow reads only through a plug-in: extension -> (what the files are, the plug-in module
# that registers itself with Pillow when imported, how to get it)
PLUGIN_FORMATS = {
    '.heic': ('HEIC/HEIF', 'pillow_heif', "pip install 'ruclip[photos]' (pillow-heif)"),
    '.heif': ('HEIC/HEIF', 'pillow_heif', "pip install 'ruclip[photos]' (pillow-heif)"),
    '.hif': ('HEIC/HEIF', 'pillow_heif', "pip install 'ruclip[photos]' (pillow-heif)"),
    '.avif': ('AVIF', 'pillow_avif', "pip install -U 'Pillow>=11.3' (or pip install pillow-avif-plugin)"),
}
_plugins_loaded = False


def open_image(source, draft_size: Optional[int] = None, *, exif_transpose: bool = True) -> Image.Image:
    """A PIL image from a PIL image (returned as it is), a file path or encoded bytes, decoded now
    (a file is closed once read).

    draft_size: let the JPEG decoder scale down by 2 or 4 while keeping both sides at least this
        long (PIL's draft mode). Faster on large photos but not the same pixels: off by default.
    exif_transpose: turn a file or bytes the way its EXIF Orientation tag says (default); False
        keeps the stored pixels.
    Raises FileNotFoundError for a missing file, ValueError for one that cannot be read, is not an
    image, or has more pixels than PIL.Image.MAX_IMAGE_PIXELS.
    """
    if isinstance(source, Image.Image):
        return source
    load_plugins()
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        if not os.path.isfile(name):
            raise FileNotFoundError(f'image file not found: {name}')
        try:
            with open(name, 'rb') as file:
                return _decode(file, name, draft_size, exif_transpose)
        except OSError as error:  # open() itself: permissions, I/O
            raise ValueError(f'cannot read image {name}: {error.strerror or error}') from None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(source), f'<{len(source)} bytes>', draft_size, exif_transpose)
    raise TypeError(f'an image must be a PIL.Image, a file path or bytes, got {type(source).__name__}')


def _decode(file, name: str, draft_size: Optional[int], exif_transpose: bool) -> Image.Image:
    try:
        image = Image.open(file)
        limit = Image.MAX_IMAGE_PIXELS
        if limit and image.size[0] * image.size[1] > limit:  # PIL only warns below twice the limit
            raise Image.DecompressionBombError(f'Image size ({image.size[0] * image.size[1]} pixels) exceeds '
                                               f'limit of {limit} pixels')
        if draft_size is not None and image.format == 'JPEG':
            # never 1/8: libjpeg decodes that from each block's mean alone, 10x further from the exact pixels
            width, height = (max(draft_size, side // MAX_DRAFT_REDUCTION) for side in image.size)
            image.draft('RGB', (width, height))
        image.load()
        if exif_transpose and image.getexif().get(EXIF_ORIENTATION, 1) != 1:
            image = ImageOps.exif_transpose(image)
        return image
    except Image.DecompressionBombError as error:
        raise ValueError(f'cannot read image {name}: {error} (PIL.Image.MAX_IMAGE_PIXELS sets the limit; '
                         f'None lifts it)') from None
    except UnidentifiedImageError:  # PIL's message names the file object, not the file
        raise ValueError(f'cannot read image {name}: not an image file Pillow can read') from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f'cannot read image {name}: {error}') from None


class ImageTransform:
    """PIL image of any mode -> normalised [3, size, size] float tensor.

    The original ruclip gets there through RandomResizedCrop(size, scale=(1, 1), ratio=(1, 1)), which
    always lands on the largest centred square, except for images whose sides differ by one pixel:
    then it draws the offset of the longer side at random (0 or 1) from torch's global generator.
    Here the offset is always (long - short) // 2, which is 0 for those images, and torch's random
    state is never touched.

    ToTensor and Normalize map each 8-bit value of each channel to one float, so they are a lookup
    table of 3 x 256 floats computed once with torchvision's own operations: the same bits, in one
    pass, without torch's thread pool (safe and cheap in worker threads).
    """

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]):
        self.size = size
        self.mean, self.std = list(three_numbers('mean', mean)), list(three_numbers('std', std, positive=True))
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1)
        values = torch.arange(256, dtype=torch.uint8).view(1, 256).float()
        self.table = values.div(255).sub(mean).div(std).numpy()  # [3, 256]: channel, 8-bit value

    def resize(self, image: Image.Image) -> Image.Image:
        """RGB (through to_8bit), largest centred square, bilinear resize to size x size."""
        if not isinstance(image, Image.Image):
            raise TypeError(f'expected a PIL.Image, got {type(image).__name__}')
        if image.mode != 'RGB':
            try:
                image = to_8bit(image).convert('RGB')
            except (ValueError, OSError) as error:
                raise ValueError(f'cannot convert a {image.mode} image to RGB: {error}') from None
        width, height = image.size
        side = min(width, height)
        if side == 0:
            raise ValueError(f'image has no pixels: size {image.size}')
        top, left = (height - side) // 2, (width - side) // 2
        square = image.crop((left, top, left + side, top + side))
        return square.resize((self.size, self.size), Image.BILINEAR)

    def to_tensor(self, image: Image.Image, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """A size x size RGB image -> [3, size, size], torchvision's ToTensor then Normalize.

        out: a contiguous float32 CPU tensor of that shape to write into (a slot of a batch).
        """
        pixels = np.asarray(image)  # [size, size, 3] uint8
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError(f'expected an 8-bit RGB image, got mode {image.mode}')
        if out is None:
            out = torch.empty(3, *pixels.shape[:2], dtype=torch.float32)
        planes = out.numpy()
        for channel in range(3):
            np.take(self.table[channel], pixels[..., channel], out=planes[channel])
        return out

    def __call__(self, image: Image.Image, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.to_tensor(self.resize(image), out=out)


def to_8bit(image: Image.Image) -> Image.Image:
    """An image of a mode wider than 8 bits per channel, as an 8-bit 'L' image; others as they are.

    PIL's own conversion clips every value to 0..255, which makes a 16-bit photo white. Here:
    - 16-bit modes ('I;16', 'I;16B', ...): 0..65535 maps to 0..255 (value / 257, rounded);
    - 'I' (32-bit integers) and 'F' (floats): the smallest of the ranges 0..1 (floats only), 0..255
      and 0..65535 that holds every value maps to 0..255; values in 0..255 keep theirs, as in the
      original. An image with values outside 0..65535 (negative ones, say) is clipped to 0..255 as
      PIL and the original do, since no range can be told from it.
    """
    if image.mode.startswith('I;16'):
        pixels, top = np.asarray(image.convert('I')), 65535
    elif image.mode in ('I', 'F'):
        pixels = np.asarray(image)
        low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
        top = _value_range(low, high, floats=image.mode == 'F')
        if top in (None, 255):
            return image  # PIL's conversion: the original's pixels
    else:
        return image
    scaled = np.rint(pixels.astype(np.float64) * (255 / top))
    return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8))


def _value_range(low: float, high: float, floats: bool) -> Optional[int]:
    if low < 0 or not np.isfinite(high):
        return None
    for top in ((1, 255, 65535) if floats else (255, 65535)):
        if high <= top:
            return top
    return None


def load_plugins() -> None:
    """Register the installed Pillow plug-ins of PLUGIN_FORMATS (once; a missing one is no error)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    try:
        from pillow_heif import register_heif_opener
        register_heif_opener()
    except ImportError:
        pass
    if '.avif' not in Image.registered_extensions():
        try:
            import pillow_avif  # noqa: F401 - registers AVIF with Pillow
        except ImportError:
            pass
