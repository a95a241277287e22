"""Reading a shards folder back: what an index builder needs, with no engine."""
import os
from typing import Iterator, List, Tuple

import numpy as np

from .._optional import require
from .manifest import SUCCESS, manifest_digest, read_manifest
from .shards import partition_done, read_marker, shard_paths


def iter_shards(folder: str, require_complete: bool = True) -> Iterator[Tuple[np.ndarray, List[dict]]]:
    """Each partition's latents and metadata in turn, for building an index without holding it all.

    Args:
        folder: a folder written by `ruclip embed --out FOLDER`.
        require_complete: refuse a folder without _SUCCESS (a run still going or cut short); False
            reads the partitions that are done.

    Yields:
        tuple[numpy.ndarray, list[dict]]: float16 `[rows, embed_dim]` latents and the metadata rows
        (image_path, key, ...) of each partition with rows, in partition order.

    Raises:
        FileNotFoundError: no _manifest.json: not a ruclip shards folder.
        ValueError: no _SUCCESS while require_complete.
    """
    pq = require('pyarrow.parquet', 'distributed', 'reading metadata parquet files')
    manifest = read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(f'{folder} has no _manifest.json: not a ruclip shards folder')
    if require_complete and not os.path.isfile(os.path.join(folder, SUCCESS)):
        raise ValueError(f'{folder} has no {SUCCESS}: some partitions are not done (rerun the same command to '
                         f'finish them, or pass require_complete=False)')
    count, digest = manifest['partition_count'], manifest_digest(manifest)
    for partition in range(count):
        if not partition_done(folder, partition, count, digest):
            continue
        if read_marker(folder, partition, count)['rows'] == 0:
            continue
        paths = shard_paths(folder, partition, count)
        yield np.load(paths['img_emb']), pq.read_table(paths['metadata']).to_pylist()


def read_shards(folder: str, require_complete: bool = True) -> Tuple[np.ndarray, List[str]]:
    """All the latents of a shards folder, with their image paths, in partition order.

    Args:
        folder: a folder written by `ruclip embed --out FOLDER` (or run_local / run_ray).
        require_complete: refuse a folder without _SUCCESS; False reads the partitions done.

    Returns:
        tuple[numpy.ndarray, list[str]]: float32 `[rows, embed_dim]` latents and each row's
        image_path.

    Raises:
        FileNotFoundError: no _manifest.json: not a ruclip shards folder.
        ValueError: no _SUCCESS while require_complete, or no embedded rows.
    """
    latents, paths = [], []
    for block, rows in iter_shards(folder, require_complete):
        latents.append(block.astype(np.float32))
        paths += [row['image_path'] for row in rows]
    if not latents:
        raise ValueError(f'{folder} holds no embedded rows')
    return np.concatenate(latents), paths


def verify_shards(folder: str) -> List[int]:
    """The partitions whose files do not match their done marker's sha256 sums (or are not done).

    Args:
        folder: a folder written by `ruclip embed --out FOLDER`.

    Returns:
        Their numbers; empty when every partition is whole.

    Raises:
        FileNotFoundError: no _manifest.json: not a ruclip shards folder.
    """
    manifest = read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(f'{folder} has no _manifest.json: not a ruclip shards folder')
    count, digest = manifest['partition_count'], manifest_digest(manifest)
    return [i for i in range(count) if not partition_done(folder, i, count, digest, verify=True)]
