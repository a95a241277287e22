"""Image batches decoded and transformed in worker threads while the model runs.

PIL releases the GIL while it decodes and resizes, and ImageTransform.to_tensor is a numpy lookup,
so threads overlap preprocessing with the model without processes, pickling or torch's thread pool.
Batches come out in input order; an image that cannot be read stops the run with an error naming
its position and its file (or byte count).
"""
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Iterator

import torch
from PIL import Image

from .image import ImageTransform, open_image

MAX_DEFAULT_WORKERS = 8


def default_num_workers() -> int:
    return min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1)


def image_batches(images: Iterable, transform: ImageTransform, batch_size: int, num_workers: int = 0,
                  pin_memory: bool = False, draft: bool = False, prefetch: int = 2) -> Iterator[torch.Tensor]:
    """pixel_values batches, [<= batch_size, 3, S, S] float32 on the CPU, in the order of `images`.

    images: PIL images, file paths or encoded bytes, in any iterable (read lazily).
    num_workers: threads that decode and transform; 0 does the work in the calling thread.
    pin_memory: allocate batches in page-locked memory, for non_blocking copies to CUDA.
    draft: let the JPEG decoder scale large photos down (see open_image); changes pixels.
    prefetch: batches prepared ahead of the one being consumed.
    """
    size = transform.size
    draft_size = size if draft else None

    def load(index: int, source, out: torch.Tensor) -> None:
        try:
            transform(open_image(source, draft_size=draft_size), out=out)
        except (ValueError, TypeError, OSError) as error:
            named = isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview))  # open_image named it
            message = f'image #{index}: {error}' if named else f'image #{index} ({_describe(source)}): {error}'
            raise (type(error)(message) if type(error) in (ValueError, TypeError, FileNotFoundError)
                   else ValueError(message)) from error

    def new_batch(n: int) -> torch.Tensor:
        return torch.empty((n, 3, size, size), dtype=torch.float32, pin_memory=pin_memory)

    chunks = _chunks(images, batch_size)
    if num_workers == 0:
        for start, chunk in chunks:
            batch = new_batch(len(chunk))
            for offset, source in enumerate(chunk):
                load(start + offset, source, batch[offset])
            yield batch
        return

    pending = deque()  # (batch, futures) in input order
    with ThreadPoolExecutor(num_workers, thread_name_prefix='ruclip-images') as pool:
        try:
            for start, chunk in chunks:
                batch = new_batch(len(chunk))
                futures = [pool.submit(load, start + offset, source, batch[offset])
                           for offset, source in enumerate(chunk)]
                pending.append((batch, futures))
                if len(pending) > prefetch:
                    yield _finished(*pending.popleft())
            while pending:
                yield _finished(*pending.popleft())
        finally:  # an error, or the consumer stopped early: drop the work not started
            for _, futures in pending:
                for future in futures:
                    future.cancel()


def _chunks(images: Iterable, size: int) -> Iterator[tuple]:
    """(index of the first, list of up to `size` images), reading `images` lazily."""
    if isinstance(images, (str, bytes, os.PathLike, Image.Image)):
        raise TypeError(f'images must be a list (or any iterable) of images, got one {type(images).__name__}')
    chunk, start = [], 0
    for index, image in enumerate(images):
        chunk.append(image)
        if len(chunk) == size:
            yield start, chunk
            chunk, start = [], index + 1
    if chunk:
        yield start, chunk


def _finished(batch: torch.Tensor, futures) -> torch.Tensor:
    for future in futures:
        future.result()  # re-raises a worker's error here, in input order
    return batch


def _describe(source) -> str:
    if isinstance(source, Image.Image):
        return f'PIL image {source.mode} {source.size[0]}x{source.size[1]}'
    return type(source).__name__
