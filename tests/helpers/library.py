"""Tiny photo libraries for the search tests: folders of small deterministic images."""
import os
from pathlib import Path

from helpers.images import rgb_image


def write_library(folder, count: int, size=(40, 30), start_seed: int = 0, subfolders: int = 3) -> list:
    """count PNG/JPEG images spread over `subfolders` subfolders of folder; returns their paths, sorted."""
    folder = Path(folder)
    paths = []
    for i in range(count):
        sub = folder / f'album{i % subfolders}'
        sub.mkdir(parents=True, exist_ok=True)
        extension = 'png' if i % 2 else 'jpg'
        path = sub / f'photo{i:04d}.{extension}'
        rgb_image(*size, seed=start_seed + i).save(path)
        paths.append(str(path))
    return sorted(paths)


def predictor_for(checkpoint, **options):
    import ruclip
    clip, processor = ruclip.load(str(checkpoint))
    return ruclip.Predictor(clip, processor, 'cpu', quiet=True, **options)


def index_state(index) -> dict:
    """{path: (size, mtime_ns, hash, latent bytes)}: everything an index records about its images."""
    rows = index._connection.execute('SELECT path, size, mtime_ns, hash, latent FROM images')
    return {os.fsdecode(path): (size, mtime_ns, digest, latent) for path, size, mtime_ns, digest, latent in rows}
