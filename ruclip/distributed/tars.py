"""Reading webdataset .tar shards: members grouped into samples by key, in archive order."""
import json
import os
import tarfile
from typing import Iterator

from .sample import Sample

TAR_IMAGE_SUFFIXES = ('jpg', 'jpeg', 'png', 'webp', 'bmp')


def read_tar(path: str) -> Iterator[Sample]:
    """The samples of a webdataset shard in archive order. A sample without an image member, or a
    shard that ends early (truncated), gives a Sample with an error; the samples before it are kept."""
    current, members = None, {}

    def sample(key: str, parts: dict) -> Sample:
        extra = {}
        if 'json' in parts:
            try:
                fields = json.loads(parts['json']).items()
                extra = {k: v for k, v in fields if k not in ('image_path', 'caption')}
            except (ValueError, AttributeError):
                extra = {}
        key_value = str(extra.pop('key', key))
        image = next((parts[suffix] for suffix in TAR_IMAGE_SUFFIXES if suffix in parts), None)
        caption = parts['txt'].decode('utf-8', errors='replace') if 'txt' in parts else None
        made = Sample(image_path=key, key=key_value, caption=caption, extra=extra, image=image)
        if image is None:
            made.error = f'{path}: sample {key} has no image member ({", ".join(TAR_IMAGE_SUFFIXES)})'
        return made

    try:
        with tarfile.open(path, 'r|') as archive:  # a stream: members in order, each read once
            for member in archive:
                if not member.isfile():
                    continue
                folder, name = os.path.split(member.name)
                key, _, suffix = name.partition('.')
                key = os.path.join(folder, key)
                data = archive.extractfile(member).read()
                if key != current and current is not None:
                    yield sample(current, members)
                    members = {}
                current = key
                members[suffix.lower()] = data
    except (tarfile.TarError, OSError, EOFError) as error:
        if current is not None:  # its members read so far are whole (each was read to its end)
            yield sample(current, members)
        yield Sample(image_path=path, key=os.path.basename(path),
                     error=f'cannot read tar shard {path} (truncated or corrupt): {error}')
        return
    if current is not None:
        yield sample(current, members)
