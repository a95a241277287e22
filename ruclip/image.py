"""Reading images and turning them into the model's pixel_values, pixel-for-pixel as the original."""
import io
import os
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError


def open_image(source) -> Image.Image:
    """A PIL image from a PIL image, a file path or encoded bytes, decoded now."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (str, os.PathLike)):
        name, opener = os.fspath(source), source
        if not os.path.isfile(name):
            raise FileNotFoundError(f'image file not found: {name}')
    elif isinstance(source, (bytes, bytearray, memoryview)):
        name, opener = f'<{len(source)} bytes>', io.BytesIO(source)
    else:
        raise TypeError(f'an image must be a PIL.Image, a file path or bytes, got {type(source).__name__}')
    try:
        image = Image.open(opener)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f'cannot read image {name}: {error}') from None
    return image


class ImageTransform:
    """PIL image of any mode -> normalised [3, size, size] float tensor.

    The original ruclip gets there through RandomResizedCrop(size, scale=(1, 1), ratio=(1, 1)), which
    always lands on the largest centred square, except for images whose sides differ by one pixel:
    then it draws the offset of the longer side at random (0 or 1) from torch's global generator.
    Here the offset is always (long - short) // 2, which is 0 for those images, and torch's random
    state is never touched.
    """

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]):
        self.size = size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def resize(self, image: Image.Image) -> Image.Image:
        """RGB, largest centred square, bilinear resize to size x size."""
        if not isinstance(image, Image.Image):
            raise TypeError(f'expected a PIL.Image, got {type(image).__name__}')
        if image.mode != 'RGB':
            try:
                image = image.convert('RGB')
            except (ValueError, OSError) as error:
                raise ValueError(f'cannot convert a {image.mode} image to RGB: {error}') from None
        width, height = image.size
        side = min(width, height)
        if side == 0:
            raise ValueError(f'image has no pixels: size {image.size}')
        top, left = (height - side) // 2, (width - side) // 2
        square = image.crop((left, top, left + side, top + side))
        return square.resize((self.size, self.size), Image.BILINEAR)

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        """A size x size RGB image -> [3, size, size], torchvision's ToTensor then Normalize."""
        pixels = torch.from_numpy(np.array(image, dtype=np.uint8))  # [size, size, 3]
        return pixels.permute(2, 0, 1).float().div(255).sub(self.mean).div(self.std)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.to_tensor(self.resize(image))
