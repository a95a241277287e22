"""What changed on disk since the last update: a walk with one stat() per file, and content hashes
only for files that are new or whose size or mtime changed."""
import hashlib
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

HASH_BLOCK = 1 << 20
logger = logging.getLogger('ruclip')


@dataclass
class Found:
    path: str
    size: int
    mtime_ns: int
    hash: Optional[bytes] = None


@dataclass
class Changes:
    """What an update has to do. unchanged counts files whose size and mtime are as recorded."""
    unchanged: int = 0
    new: List[Found] = field(default_factory=list)  # new paths and changed files, hashed (hash None: unreadable)
    touched: List[Found] = field(default_factory=list)  # same content as recorded, new size/mtime
    gone: List[int] = field(default_factory=list)  # ids of rows whose file is no longer there
    unreadable: List[Tuple[str, str]] = field(default_factory=list)  # (folder or file, reason): rows kept


class Listing(dict):
    """{absolute path: (size, mtime_ns)} of the image files found; `unreadable` holds (path, reason)
    for each folder that could not be listed and each file that could not be stat()ed: what they
    hold is unknown, not gone. `needs_plugin`: (path, reason) for each file of a format whose Pillow
    plug-in is missing (ruclip.image_files.needs_plugin), which the update reports as skipped."""

    def __init__(self):
        super().__init__()
        self.unreadable: List[Tuple[str, str]] = []
        self.needs_plugin: List[Tuple[str, str]] = []

    def cannot_read(self, path: str, reason: str) -> None:
        logger.warning('skipped: %s', reason)
        self.unreadable.append((path, reason))


def walk(roots: Iterable[str]) -> Listing:
    """The image files under roots, as ruclip.find_images chooses them (a file root is taken whatever
    its extension; in folders, files with an image extension, hidden files and folders left out;
    symlinked folders not followed). A folder that cannot be listed is named in a warning on the
    'ruclip' logger and in the listing's `unreadable`, as find_images names it."""
    from ..image import PLUGIN_FORMATS
    from ..image_files import image_extensions, needs_plugin

    extensions = image_extensions()
    found, plugin_needed, missing = Listing(), [], PLUGIN_FORMATS.keys() - extensions
    for root in roots:
        if os.path.isfile(root):
            stat = os.stat(root)
            found[root] = (stat.st_size, stat.st_mtime_ns)
            continue
        if not os.path.isdir(root):
            raise FileNotFoundError(f'no such image file or folder: {root}')
        pending = [root]
        while pending:
            folder = pending.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as error:  # permissions, an unmounted share: its files are unknown, not gone
                found.cannot_read(folder, f'cannot read folder {folder}: {error.strerror or error}')
                continue
            for entry in entries:
                if entry.name.startswith('.'):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.name[entry.name.rfind('.'):].lower() in extensions:  # splitext, without its cost
                    try:
                        stat = entry.stat()
                    except FileNotFoundError:
                        continue  # a dangling symlink
                    except OSError as error:
                        found.cannot_read(entry.path, f'cannot read {entry.path}: {error.strerror or error}')
                        continue
                    if entry.is_file():
                        found[entry.path] = (stat.st_size, stat.st_mtime_ns)
                elif entry.name[entry.name.rfind('.'):].lower() in missing:
                    plugin_needed.append(entry.path)
    found.needs_plugin = needs_plugin(sorted(plugin_needed), extensions)
    return found


def compare(found: Listing, recorded: Dict[str, Tuple[int, int, int, Optional[bytes]]]) -> Changes:
    """Changes from `recorded` ({path: (id, size, mtime_ns, hash)}, the rows under the same roots)
    to `found`; new and changed files are hashed here. Rows under a folder (or of a file) that could
    not be read are kept as they are."""
    changes = Changes(unreadable=list(found.unreadable))
    for path, (size, mtime_ns) in found.items():
        row = recorded.get(path)
        if row is not None and row[1] == size and row[2] == mtime_ns:
            changes.unchanged += 1
            continue
        item = Found(path, size, mtime_ns, content_hash(path))
        if row is not None and row[3] is not None and row[3] == item.hash:
            changes.touched.append(item)
        else:
            changes.new.append(item)
    unknown = [path for path, _ in found.unreadable]
    changes.gone = [row[0] for path, row in recorded.items() if path not in found and not _under(path, unknown)]
    changes.new.sort(key=lambda item: item.path)
    return changes


def _under(path: str, folders: List[str]) -> bool:
    return any(path == folder or path.startswith(folder.rstrip(os.sep) + os.sep) for folder in folders)


def content_hash(path: str) -> Optional[bytes]:
    """blake2b (16 bytes) of the file's bytes; None when it cannot be read (the model will say why)."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, 'rb') as file:
            while block := file.read(HASH_BLOCK):
                digest.update(block)
    except OSError:
        return None
    return digest.digest()
