"""The README's pictures: a cosine heatmap, top-k probability bars, a grid of labelled images.

Needs matplotlib (pip install 'ruclip[plot]'), imported only when a function here is called. Each
function returns a matplotlib.figure.Figure built without pyplot (nothing global, nothing to
close, safe headless); save it with fig.savefig(path). Cyrillic renders in DejaVu Sans, the font
matplotlib ships.
"""
import math
import os
from typing import Optional, Sequence

import numpy as np

from ._checks import count
from ._optional import require
from .image import open_image
from .scores import TopK

THUMBNAIL = 192  # pixels on the longer side of every image drawn


def similarity_heatmap(similarity, images: Sequence, texts: Sequence[str],
                       title: Optional[str] = 'Cosine similarity between text and image features',
                       vmin: Optional[float] = None, vmax: Optional[float] = None):
    """Texts on the rows, images as thumbnails above the columns, the cosine in every cell.

    The matrix is the axes' first image (label 'similarity'), the thumbnails follow it. A title
    wider than the figure is wrapped.

    Args:
        similarity (torch.Tensor | numpy.ndarray): `[n_images, n_texts]`, ruclip.similarity's output.
        images: PIL images, paths or bytes, one per column.
        texts: one caption per row.
        title: the figure's title; None for none.
        vmin: the low end of the colour scale; the data's by default.
        vmax: the high end of the colour scale; the data's by default.

    Returns:
        matplotlib.figure.Figure: built without pyplot, so nothing to close; saving is up to you.

    Raises:
        ValueError: no images or texts, or a similarity whose shape is not `[n_images, n_texts]`.
        TypeError: images or texts given as one item instead of an iterable.
        ImportError: matplotlib is not installed (the `plot` extra).
    """
    images, texts = _items(images, 'images'), _items(texts, 'texts')
    matrix = _matrix(similarity, len(images), len(texts)).T  # [n_texts, n_images]
    n_texts, n_images = matrix.shape
    caption_inches = 0.11 * max(len(str(text)) for text in texts)  # about 0.11 inch a character at 12 pt
    figure = _figure(figsize=(0.5 + caption_inches + 0.85 * n_images, 0.9 + 0.85 * (n_texts + 1.2)))
    ax = figure.add_subplot()
    cells = ax.imshow(matrix, cmap='viridis', vmin=vmin, vmax=vmax, aspect='auto', label='similarity')
    for column, image in enumerate(images):  # thumbnails in a row above the matrix
        ax.imshow(_thumbnail(image, square=True), extent=(column - 0.5, column + 0.5, -0.6, -1.6),
                  aspect='auto', label=f'thumbnail {column}')
    low, high = cells.norm.vmin, cells.norm.vmax
    for row, column in np.ndindex(matrix.shape):
        shade = (matrix[row, column] - low) / (high - low) if high > low else 0.0
        ax.text(column, row, f'{matrix[row, column]:.2f}', ha='center', va='center', fontsize=9,
                color='black' if shade > 0.6 else 'white')
    ax.set_yticks(range(n_texts), [str(text) for text in texts], fontsize=12)
    ax.set_xticks([])
    ax.set_xlim(-0.5, n_images - 0.5)
    ax.set_ylim(n_texts - 0.5, -1.7)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=14, wrap=True)
    return figure


def probability_bars(images: Sequence, top: TopK, columns: int = 2, title: Optional[str] = None,
                     score_name: str = 'probability'):
    """Each image beside a horizontal bar chart of its top-k scores, best on top.

    Axes come in pairs, image then bars; each bar chart's x label names the best label.

    Args:
        images: PIL images, paths or bytes (any iterable), one per row of `top`.
        top: ruclip.classify's result for these images, or any TopK (unlabelled columns show their
            index).
        columns: image-and-bars pairs per row of the figure.
        title: the figure's title, if any.
        score_name: what the scores are, for the x label: probabilities get a 0 to 1 axis, other
            scores (score_name='cosine' for ruclip.rank's texts_per_image) an axis that fits them,
            negative ones too.

    Returns:
        matplotlib.figure.Figure: built without pyplot, so nothing to close; saving is up to you.

    Raises:
        ValueError: no images, a row count of `top` that differs from the images, or columns not a
            positive integer.
        TypeError: images given as one item instead of an iterable.
        ImportError: matplotlib is not installed (the `plot` extra).
    """
    images = _items(images, 'images')
    _check_count(top, images, 'top')
    rows = math.ceil(len(images) / count('columns', columns))
    low, high = _score_range(top.scores, score_name)
    figure = _figure(figsize=(6.5 * columns, 2.8 * rows))
    grid = figure.add_gridspec(rows, 2 * columns, width_ratios=[1, 1.25] * columns)
    for i, (image, entries) in enumerate(zip(images, top.tolist())):
        row, column = divmod(i, columns)
        picture, bars = figure.add_subplot(grid[row, 2 * column]), figure.add_subplot(grid[row, 2 * column + 1])
        _show(picture, image)
        names = [str(entry.get('label', entry['index'])) for entry in entries]
        drawn = bars.barh(range(len(entries)), [entry['score'] for entry in entries], color='tab:blue')
        bars.bar_label(drawn, fmt='%.2f', padding=2, fontsize=8)
        bars.set_yticks(range(len(entries)), names)
        bars.invert_yaxis()
        bars.set_xlim(low, high)
        if score_name == 'probability':
            bars.set_xticks([0, 0.25, 0.5, 0.75, 1])
        else:
            bars.axvline(0, color='black', linewidth=0.8)
        bars.grid(axis='x', alpha=0.4)
        bars.set_xlabel(f'{score_name} "{names[0]}"')
    if title:
        figure.suptitle(title)
    return figure


def label_grid(images: Sequence, labels: Sequence[str], columns: int = 4, title: Optional[str] = None):
    """The images in a grid, each titled with its label (e.g. its predicted class).

    Args:
        images: PIL images, paths or bytes (any iterable).
        labels: one title per image.
        columns: images per row of the grid.
        title: the figure's title, if any.

    Returns:
        matplotlib.figure.Figure: built without pyplot, so nothing to close; saving is up to you.

    Raises:
        ValueError: no images, a count of labels that differs from the images, or columns not a
            positive integer.
        TypeError: images given as one item instead of an iterable.
        ImportError: matplotlib is not installed (the `plot` extra).
    """
    images = _items(images, 'images')
    _check_count(labels, images, 'labels')
    rows = math.ceil(len(images) / count('columns', columns))
    figure = _figure(figsize=(3 * columns, 3.2 * rows))
    for i, (image, label) in enumerate(zip(images, labels)):
        ax = figure.add_subplot(rows, columns, i + 1)
        _show(ax, image)
        ax.set_title(str(label), fontsize=13)
    if title:
        figure.suptitle(title)
    return figure


def _figure(figsize):
    figure = require('matplotlib.figure', 'plot', 'plotting')
    return figure.Figure(figsize=figsize, layout='constrained')


def _show(ax, image):
    ax.imshow(_thumbnail(image))
    ax.set_axis_off()


def _thumbnail(image, square: bool = False) -> np.ndarray:
    """[h, w, 3] uint8, at most THUMBNAIL pixels a side; `square`: the centred square the model sees."""
    image = open_image(image).convert('RGB')
    if square:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    return np.asarray(image)


def _matrix(similarity, n_images: int, n_texts: int) -> np.ndarray:
    if hasattr(similarity, 'detach'):
        similarity = similarity.detach().float().cpu().numpy()
    matrix = np.asarray(similarity, dtype=np.float32)
    if matrix.shape != (n_images, n_texts):
        raise ValueError(f'similarity must be [n_images, n_texts] = [{n_images}, {n_texts}] for '
                         f'{n_images} images and {n_texts} texts, got shape {list(matrix.shape)}')
    return matrix


def _items(values, name: str) -> list:
    """`values` as a list (a generator is taken too), refusing a lone str, path, bytes or image and an empty one."""
    if isinstance(values, (str, bytes, os.PathLike)) or hasattr(values, 'getpixel') or not hasattr(values, '__iter__'):
        raise TypeError(f'{name} must be a list (or any iterable), got one {type(values).__name__}')
    values = list(values)
    if not values:
        raise ValueError(f'{name} is empty: give at least one')
    return values


def _score_range(scores, score_name: str):
    """The bars' x limits: 0 to 1 for probabilities, else the scores' range and 0, with room for the numbers."""
    low, high = min(0.0, float(scores.min())), max(0.0, float(scores.max()))
    if score_name == 'probability' and 0 <= low and high <= 1:
        return 0, 1.15
    room = 0.2 * ((high - low) or 1.0)
    return low - (room if low < 0 else 0), high + (room if high > 0 else 0)


def _check_count(values, images, name: str):
    if len(values) != len(images):
        raise ValueError(f'{name} has {len(values)} rows for {len(images)} images')
