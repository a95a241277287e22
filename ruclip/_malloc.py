"""Keeping glibc's malloc from returning the model's activation blocks to the OS between layers;
opt-in, through Predictor(tune_malloc=True).

On CPU, torch takes every activation from malloc. glibc serves blocks above a threshold with fresh
mmaps and trims the top of its heap once more than a threshold lies free, so a forward pass keeps
giving its tens of megabytes back to the kernel and faulting them in again, zeroed (the cost is in
benchmarks/RESULTS.md). Fixed thresholds (those the
MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ environment variables would set) keep the blocks
in the process for the next batch. jemalloc or tcmalloc (LD_PRELOAD) do the same job.
"""
import ctypes
import os
import sys

MMAP_THRESHOLD = 32 * 2 ** 20  # glibc's largest: blocks up to this come from the heap, reused
TRIM_THRESHOLD = 512 * 2 ** 20  # free memory kept at the top of the heap before it is trimmed
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_ENVIRONMENT = ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'GLIBC_TUNABLES')
_done = False


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process, once; True if they are set.

    Does nothing off Linux, without glibc, with jemalloc or tcmalloc preloaded, or when the user's
    environment already sets malloc's thresholds or tunables.
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith('linux') or any(name in os.environ for name in _ENVIRONMENT):
        return False
    if any(name in os.environ.get('LD_PRELOAD', '') for name in ('jemalloc', 'tcmalloc', 'mimalloc')):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl's mallopt does nothing useful
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
