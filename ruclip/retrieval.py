"""Retrieval on top of a Predictor: rank captions and images, encode captions, embed image files.

Wherever `images` is taken, it may be a list (or any iterable) of PIL images, file paths or
bytes, or the [n_images, embed_dim] tensor that Predictor.get_image_latents returned for them,
so latents are computed once and reused.
"""
import logging
import os
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch

from ._checks import str_list
from .predictor import Predictor
from .scores import Ranking, rank_latents

Images = Union[Iterable, torch.Tensor]
logger = logging.getLogger('ruclip')


@dataclass(frozen=True)
class Embeddings:
    """Image latents for the files that could be read.

    Attributes:
        latents: `[len(files), embed_dim]` float, L2-normalised, row i for `files[i]`.
        files: the paths embedded, in input order.
        skipped: `(path, reason)` for each file left out, in input order, after the folders that
            could not be listed when `files` came from find_images (its `ImageFiles.unreadable`).
    """
    latents: torch.Tensor
    files: List[str]
    skipped: List[Tuple[str, str]]


def rank(predictor: Predictor, images: Images, texts: Sequence[str], k: int = 5,
         image_names: Optional[Sequence[str]] = None, text_latents: Optional[torch.Tensor] = None) -> Ranking:
    """The k most similar texts for each image and the k most similar images for each text.

    Texts are encoded as they are, without templates (see encode_texts); scores are cosine
    similarities. The full images x texts matrix is never held (see rank_latents).

    Args:
        predictor: the model to run.
        images: PIL images, file paths or encoded bytes (any iterable), or `[n_images, embed_dim]`
            image latents.
        texts: the captions, at least one.
        k: results kept in each direction; cut to the number of candidates.
        image_names: names of the images (file paths, say), as the labels of `images_per_text`.
        text_latents: `encode_texts(predictor, texts)`, when already computed.

    Returns:
        A Ranking, with `texts_per_image` (`[n_images, k]`) and `images_per_text` (`[n_texts, k]`).

    Raises:
        ValueError: empty texts, a count of image names that differs from the images, or an image
            that cannot be read (FileNotFoundError for a missing file).
        TypeError: texts given as one str.
    """
    texts = str_list(texts, 'texts')
    if text_latents is None:
        text_latents = encode_texts(predictor, texts)
    return rank_latents(image_latents(predictor, images), text_latents, k, texts=texts, images=image_names)


def encode_texts(predictor: Predictor, texts: Iterable[str]) -> torch.Tensor:
    """Latents of captions taken as they are, without templates (`predictor.get_caption_latents`).

    Args:
        predictor: the model to run.
        texts: the captions, at least one.

    Returns:
        `[n_texts, embed_dim]` float tensor, L2-normalised.

    Raises:
        ValueError: texts is empty.
        TypeError: texts is one str, or holds something other than str.
    """
    return predictor.get_caption_latents(str_list(texts, 'texts'))


def image_latents(predictor: Predictor, images: Images) -> torch.Tensor:
    """images (see the module's doc) -> [n_images, embed_dim] L2-normalised latents."""
    if isinstance(images, torch.Tensor):
        if images.dim() != 2:
            raise ValueError(f'a tensor given as images must be [n_images, embed_dim] image latents, '
                             f'got shape {list(images.shape)}')
        return images
    return predictor.get_image_latents(images)


def embed_images(predictor: Predictor, files: Iterable[Union[str, os.PathLike]]) -> Embeddings:
    """Latents of image files, skipping those that cannot be read.

    The files are decoded in the predictor's worker threads; unreadable files (images over
    `PIL.Image.MAX_IMAGE_PIXELS` too) are skipped with a warning on the 'ruclip' logger. Shows a
    progress bar unless `predictor.quiet`.

    Args:
        predictor: the model to run.
        files: image file paths, e.g. `ruclip.find_images(folder)` (whose unreadable subfolders are
            then reported in `skipped` too).

    Returns:
        The latents of the files kept, those files, and what was skipped and why.

    Raises:
        ValueError: files is empty, or none of them could be read.
        TypeError: files is one path instead of a list of them.
    """
    if isinstance(files, (str, bytes, os.PathLike)):
        raise TypeError(f'files must be a list of image file paths, got one {type(files).__name__} '
                        f'(ruclip.find_images(folder) lists the images of a folder)')
    unreadable_folders = list(getattr(files, 'unreadable', ()))  # find_images named them already
    files = [os.fspath(path) for path in files]
    if not files:
        raise ValueError('files is empty: give at least one image file')
    embedded = predictor.embed_images(files)
    skipped = [(path, reason) for _, path, reason in embedded.failures]
    for _, reason in skipped:
        logger.warning('skipped: %s', reason)
    if not embedded.kept:
        raise ValueError(f'none of the {len(files)} image files could be read')
    return Embeddings(latents=embedded.latents.to(predictor.device), files=[files[i] for i in embedded.kept],
                      skipped=unreadable_folders + skipped)
