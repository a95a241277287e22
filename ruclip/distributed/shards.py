"""The clip-retrieval layout on disk, written one partition at a time.

    OUT/img_emb/img_emb_{i}.npy         [rows, embed_dim] float16, L2-normalised (np.save)
    OUT/text_emb/text_emb_{i}.npy       the same for the captions, row for row (with texts)
    OUT/metadata/metadata_{i}.parquet   image_path, caption, key and the input's other columns
    OUT/failed/failed_{i}.parquet       image_path, key, caption, reason for each row left out
    OUT/_done/done_{i}.json             written last: rows, failed, each file's size and sha256
    OUT/_manifest.json, OUT/_SUCCESS    (manifest.py)

{i} is zero-padded to int(log10(partition_count)) + 1 digits, as clip-retrieval's writer pads it.
A partition whose rows all failed (or that has none) has no img_emb/metadata file, as in
clip-retrieval, only its done marker (and failed file). Every file goes through
ruclip._outputs.replacing, so it is whole or absent; files of the partition that the new result
does not have (left by an earlier, killed run) are removed before the done marker is written.
"""
import hashlib
import json
import math
import os
import re
from typing import Dict, List, Optional

import numpy as np

from .._optional import require
from .._outputs import PARTIAL, atomic_open, replacing

FOLDERS = ('img_emb', 'text_emb', 'metadata', 'failed', '_done')
FAILED_COLUMNS = ('image_path', 'key', 'caption', 'reason')
SHARD_NAMES = {'img_emb': ('img_emb', '.npy'), 'text_emb': ('text_emb', '.npy'), 'metadata': ('metadata', '.parquet'),
               'failed': ('failed', '.parquet'), '_done': ('done', '.json')}  # folder: (name prefix, extension)


def shard_id(partition_id: int, partition_count: int) -> str:
    return str(partition_id).zfill(int(math.log10(partition_count)) + 1)


def shard_paths(out: str, partition_id: int, partition_count: int) -> Dict[str, str]:
    i = shard_id(partition_id, partition_count)
    return {'img_emb': os.path.join(out, 'img_emb', f'img_emb_{i}.npy'),
            'text_emb': os.path.join(out, 'text_emb', f'text_emb_{i}.npy'),
            'metadata': os.path.join(out, 'metadata', f'metadata_{i}.parquet'),
            'failed': os.path.join(out, 'failed', f'failed_{i}.parquet'),
            'done': os.path.join(out, '_done', f'done_{i}.json')}


def is_shard_file(folder: str, name: str) -> bool:
    """Whether `name` in the layout's `folder` is one shard_paths names, or a temporary of one (a
    killed run may leave those)."""
    prefix, extension = SHARD_NAMES[folder]
    shard = rf'{prefix}_\d+{re.escape(extension)}'
    return re.fullmatch(rf'{shard}|\.{shard}\..+{re.escape(PARTIAL + extension)}', name) is not None


def write_partition(out: str, partition_id: int, partition_count: int, manifest_digest: str, metadata: List[dict],
                    image_latents: np.ndarray, text_latents: Optional[np.ndarray], failed: List[dict]) -> dict:
    """Write one partition's files, then its done marker, which is returned.

    metadata: one dict per embedded row (image_latents row for row); text_latents: None or the same
    number of rows; failed: dicts with FAILED_COLUMNS."""
    pa = require('pyarrow', 'distributed', 'writing metadata parquet files')
    pq = require('pyarrow.parquet', 'distributed', 'writing metadata parquet files')
    if len(image_latents) != len(metadata) or text_latents is not None and len(text_latents) != len(metadata):
        raise ValueError(f'partition {partition_id}: {len(metadata)} metadata rows but {len(image_latents)} image '
                         f'latents and {None if text_latents is None else len(text_latents)} text latents')
    paths = shard_paths(out, partition_id, partition_count)
    files = {}

    def write(kind: str, writer) -> None:
        os.makedirs(os.path.dirname(paths[kind]), exist_ok=True)
        with replacing(paths[kind]) as temporary:
            writer(temporary)
            files[kind] = dict(path=os.path.relpath(paths[kind], out), size=os.path.getsize(temporary),
                               sha256=file_sha256(temporary))

    if metadata:
        write('img_emb', lambda path: np.save(path, _float16(image_latents)))
        if text_latents is not None:
            write('text_emb', lambda path: np.save(path, _float16(text_latents)))
        write('metadata', lambda path: pq.write_table(pa.Table.from_pylist(metadata), path))
    if failed:
        table = pa.Table.from_pylist([{name: row.get(name) for name in FAILED_COLUMNS} for row in failed],
                                     schema=pa.schema([(name, pa.string()) for name in FAILED_COLUMNS]))
        write('failed', lambda path: pq.write_table(table, path))
    for kind in ('img_emb', 'text_emb', 'metadata', 'failed'):
        if kind not in files and os.path.exists(paths[kind]):
            os.remove(paths[kind])  # left by an earlier run of this partition that was cut short
    marker = dict(partition=partition_id, partition_count=partition_count, manifest_sha256=manifest_digest,
                  rows=len(metadata), failed=len(failed), files=files)
    os.makedirs(os.path.dirname(paths['done']), exist_ok=True)
    with atomic_open(paths['done'], 'w', encoding='utf-8') as file:
        json.dump(marker, file, indent=1)
    return marker


def _float16(latents: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(latents, dtype=np.float16))


def read_marker(out: str, partition_id: int, partition_count: int) -> Optional[dict]:
    path = shard_paths(out, partition_id, partition_count)['done']
    try:
        with open(path, encoding='utf-8') as file:
            return json.load(file)
    except (FileNotFoundError, ValueError):
        return None


def partition_done(out: str, partition_id: int, partition_count: int, manifest_digest: str,
                   verify: bool = False) -> bool:
    """Whether the partition's done marker is there, was written under this manifest, and its files
    exist with the sizes it records (and, with verify, the sha256 sums)."""
    marker = read_marker(out, partition_id, partition_count)
    if not marker or marker.get('manifest_sha256') != manifest_digest:
        return False
    for entry in marker['files'].values():
        path = os.path.join(out, entry['path'])
        if not os.path.isfile(path) or os.path.getsize(path) != entry['size']:
            return False
        if verify and file_sha256(path) != entry['sha256']:
            return False
    return True


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for block in iter(lambda: file.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
