"""Image batches decoded and transformed in worker threads while the model runs.

PIL releases the GIL while it decodes and resizes, and ImageTransform.to_tensor is a numpy lookup,
so threads overlap preprocessing with the model without processes, pickling or torch's thread pool.
Batches come out in input order; an image that cannot be read stops the run with an error naming
its position and its file (or byte count), or is left out and reported (on_error).
"""
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Callable, Iterable, Iterator, Optional

import torch
from PIL import Image

from .image import DRAFT_SIDE_FACTOR, ImageTransform, open_image

MAX_DEFAULT_WORKERS = 8
CGROUP_CPU_MAX = '/sys/fs/cgroup/cpu.max'  # cgroup v2: '<quota> <period>' in microseconds, or 'max <period>'
PIL_LOCKS = 64
# A lazily opened PIL image must not be decoded by two threads at once (they would share its file
# pointer), whether it is listed twice in one call or given to calls running at once in several
# threads: so one table for the process, a fixed set of locks picked by id() (memory stays bounded).
_pil_locks = [threading.Lock() for _ in range(PIL_LOCKS)]


def default_num_workers() -> int:
    """One decoding thread per core this process may use, up to MAX_DEFAULT_WORKERS."""
    return min(MAX_DEFAULT_WORKERS, usable_cores())


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (taskset, cpusets), capped by a cgroup v2
    CPU quota (a container's --cpus), rounded up; os.cpu_count() where neither can be read."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        with open(CGROUP_CPU_MAX, encoding='ascii') as file:
            quota, period = file.read().split()[:2]
        if quota != 'max':
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def image_batches(images: Iterable, transform: ImageTransform, batch_size: int, num_workers: int = 0,
                  pin_memory: bool = False, draft: bool = False, prefetch: int = 2,
                  on_error: Optional[Callable[[int, object, Exception], None]] = None) -> Iterator[torch.Tensor]:
    """pixel_values batches, [<= batch_size, 3, S, S] float32 on the CPU, in the order of `images`.

    images: PIL images, file paths or encoded bytes, in any iterable (read lazily).
    num_workers: threads that decode and transform; 0 does the work in the calling thread.
    pin_memory: allocate batches in page-locked memory, for non_blocking copies to CUDA.
    draft: let the JPEG decoder scale large photos down, keeping both sides at least DRAFT_SIDE_FACTOR
        times the transform's size (see open_image); changes pixels a little.
    prefetch: batches prepared ahead of the one being consumed.
    on_error: None: an image that cannot be read raises an error naming its position. Otherwise
        on_error(index, image, error) is called for it, in input order in the calling thread, and
        the image is left out of its batch.
    """
    size = transform.size
    draft_size = DRAFT_SIDE_FACTOR * size if draft else None

    def load(source, out: torch.Tensor) -> None:
        if isinstance(source, Image.Image):
            with _pil_locks[(id(source) >> 4) % PIL_LOCKS]:  # ids are 16-byte aligned
                transform(source, out=out)
        else:
            transform(open_image(source, draft_size=draft_size), out=out)

    def new_batch(n: int) -> torch.Tensor:
        return torch.empty((n, 3, size, size), dtype=torch.float32, pin_memory=pin_memory)

    pending = deque()  # (start, chunk, batch, futures) in input order
    with ThreadPoolExecutor(num_workers, thread_name_prefix='ruclip-images') if num_workers else nullcontext() as pool:
        submit, ahead = (pool.submit, prefetch) if pool else (_Deferred, 0)
        try:
            for start, chunk in _chunks(images, batch_size):
                batch = new_batch(len(chunk))
                pending.append((start, chunk, batch, [submit(load, source, batch[offset])
                                                      for offset, source in enumerate(chunk)]))
                if len(pending) > ahead:
                    yield from _finished(*pending.popleft(), on_error)
            while pending:
                yield from _finished(*pending.popleft(), on_error)
        finally:  # an error, or the consumer stopped early: drop the work not started
            for *_, futures in pending:
                _cancel(futures)


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


class _Deferred:
    """A job done in the calling thread when its result is asked for (num_workers=0), as a Future."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def result(self):
        return self.function(*self.args)

    def cancel(self) -> bool:
        return True


def _finished(start: int, chunk: list, batch: torch.Tensor, futures: list, on_error) -> Iterator[torch.Tensor]:
    """The batch once its images are loaded (none if all were left out); errors in input order."""
    kept = []
    try:
        for offset, future in enumerate(futures):
            try:
                future.result()
            except Exception as error:
                if not _is_unreadable(chunk[offset], error):
                    raise
                if on_error is None:
                    raise _with_position(start + offset, chunk[offset], error) from error
                on_error(start + offset, chunk[offset], error)
            else:
                kept.append(offset)
    except BaseException:  # the error, or Ctrl-C, surfaces now, not after the rest of the batch
        _cancel(futures)
        raise
    for row, offset in enumerate(kept):  # close the gaps in place: a slice stays in pinned memory
        if row != offset:
            batch[row].copy_(batch[offset])
    if kept:
        yield batch[:len(kept)]


def _cancel(futures) -> None:
    for future in futures:
        future.cancel()


def _is_unreadable(source, error: Exception) -> bool:
    """Whether `error` means the image cannot be read: any error from a PIL image's own (lazy)
    decoder, whose plugins raise many kinds; for files and bytes, what open_image raises. Any other
    error is a bug, and goes on as it is."""
    if isinstance(error, MemoryError):
        return False
    return isinstance(source, Image.Image) or isinstance(error, (ValueError, TypeError, OSError))


def _with_position(index: int, source, error: Exception) -> Exception:
    """error, with the image's position (and what it was, unless open_image named its file)."""
    named = isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview))
    reason = _reason(source, error)
    message = f'image #{index}: {reason}' if named else f'image #{index} ({_describe(source)}): {reason}'
    return type(error)(message) if type(error) in (ValueError, TypeError, FileNotFoundError) else ValueError(message)


def _reason(source, error: Exception) -> str:
    """str(error), never empty, with what to do when a PIL image's file was closed before it was decoded."""
    reason = str(error) or type(error).__name__
    if isinstance(source, Image.Image) and 'closed' in reason:
        reason += (' (the PIL image was opened lazily and its file closed before it was decoded: call '
                   'image.load() before closing the file, or give the file path instead)')
    return reason


def _describe(source) -> str:
    if isinstance(source, Image.Image):
        return f'PIL image {source.mode} {source.size[0]}x{source.size[1]}'
    return type(source).__name__
