"""_manifest.json: what made the shards of an output folder, so runs are never mixed.

It records the model (as named, and its ruclip.identity.ModelIdentity: config, tokenizer, weights,
backend, precision, preprocessing), the output dtype, the input's kind and fingerprint, the partition
count, whether captions are embedded, and the ruclip version. Every field but ruclip_version must
match for a run to resume into a folder; the done markers carry the digest of those fields. A folder
whose manifest differs, or that holds files but no manifest, is refused; with overwrite, a folder
whose manifest differs is cleared of the files a run writes (and only those) first, and a folder
that holds files but no manifest is refused even then: ruclip deletes only what it can show it wrote.
"""
import hashlib
import json
import os
from typing import List, Optional

from .._outputs import atomic_open
from .shards import FOLDERS, is_shard_file

MANIFEST = '_manifest.json'
SUCCESS = '_SUCCESS'
FORMAT = 'ruclip-shards/2'  # 2: the model's identity replaces config, tokenizer and weights digests of its own
NOT_COMPARED = ('ruclip_version',)


def build_manifest(model: str, identity, inputs, partition_count: int, texts: bool) -> dict:
    """model: the name the run loads; identity: its Predictor's ruclip.identity.ModelIdentity."""
    from .. import __version__

    return dict(format=FORMAT, model=model, model_identity=identity.to_dict(), output_dtype='float16',
                input=dict(kind=inputs.kind, units=len(inputs.units), fingerprint=inputs.fingerprint()),
                partition_count=partition_count, texts=texts, ruclip_version=__version__)


def manifest_digest(manifest: dict) -> str:
    compared = {k: v for k, v in manifest.items() if k not in NOT_COMPARED}
    return hashlib.sha256(json.dumps(compared, sort_keys=True).encode()).hexdigest()


def read_manifest(out: str) -> Optional[dict]:
    path = os.path.join(out, MANIFEST)
    if not os.path.isfile(path):
        return None
    with open(path, encoding='utf-8') as file:
        try:
            return json.load(file)
        except ValueError:  # ruclip writes it whole: this folder is not (or no longer) one ruclip can vouch for
            raise ValueError(f'{path} is not valid JSON, so {out} cannot be told apart from a folder of your own '
                             f'files and nothing in it is touched: choose a new or empty folder') from None


def prepare_output(out: str, manifest: dict, overwrite: bool = False) -> str:
    """Check `out` against `manifest`, clearing it first when overwrite and they differ; write the
    manifest if absent. Returns its digest. Raises ValueError naming the fields that differ.

    Only a folder that holds a manifest is ever cleared (clear_shards: only what a run writes); a
    folder that holds files but no manifest is refused even with overwrite."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f'--out {out} is a file, expected a folder for the shards')
    existing = read_manifest(out)
    if existing is not None and manifest_digest(existing) != manifest_digest(manifest):
        if not overwrite:
            fields = [k for k in sorted(set(existing) | set(manifest))
                      if k not in NOT_COMPARED and existing.get(k) != manifest.get(k)]
            details = '; '.join(f'{k}: {existing.get(k)!r} there, {manifest.get(k)!r} now' for k in fields)
            raise ValueError(f'{out} holds shards of another run ({details}); choose another folder, or pass '
                             f'--overwrite to delete them and start again')
        clear_shards(out)
    elif existing is None and os.path.isdir(out) and os.listdir(out):
        raise ValueError(f'{out} is not empty and has no {MANIFEST}: it is not a folder of ruclip shards, so '
                         f'nothing in it is touched, even with --overwrite; choose a new or empty folder')
    os.makedirs(out, exist_ok=True)
    if read_manifest(out) is None:
        with atomic_open(os.path.join(out, MANIFEST), 'w', encoding='utf-8') as file:
            json.dump(manifest, file, indent=1, ensure_ascii=False)
    return manifest_digest(manifest)


def written_paths(out: str) -> List[str]:
    """What a run writes in `out`: the layout's folders, the manifest and _SUCCESS (none of them may
    be, or hold, one of its inputs)."""
    return [os.path.join(out, name) for name in (*FOLDERS, MANIFEST, SUCCESS)]


def clear_shards(out: str) -> None:
    """Delete what a run writes into `out`, a folder its manifest shows ruclip made: the files named as
    shards.shard_paths names them (and their temporaries) in the layout's folders, those folders once
    empty, the manifest and _SUCCESS. Anything else there (a file of yours in metadata/, a folder
    inside img_emb/) stays."""
    for name in FOLDERS:
        folder = os.path.join(out, name)
        if not os.path.isdir(folder) or os.path.islink(folder):
            continue
        for entry in os.scandir(folder):
            if entry.is_file(follow_symlinks=False) and is_shard_file(name, entry.name):
                os.remove(entry.path)
        try:
            os.rmdir(folder)
        except OSError:  # it holds something ruclip did not write
            pass
    for name in (SUCCESS, MANIFEST):
        if os.path.isfile(os.path.join(out, name)):
            os.remove(os.path.join(out, name))


def write_success(out: str, partition_count: int, digest: str) -> Optional[dict]:
    """Write _SUCCESS (totals of rows and failures) once every partition is done; None until then."""
    from .shards import partition_done, read_marker

    if not all(partition_done(out, i, partition_count, digest) for i in range(partition_count)):
        return None
    markers = [read_marker(out, i, partition_count) for i in range(partition_count)]
    totals = dict(partitions=partition_count, rows=sum(m['rows'] for m in markers),
                  failed=sum(m['failed'] for m in markers), manifest_sha256=digest)
    with atomic_open(os.path.join(out, SUCCESS), 'w', encoding='utf-8') as file:
        json.dump(totals, file, indent=1)
    return totals
