"""Finding image files: the files of folders whose extension Pillow (with its installed plug-ins) opens,
in a stable order, and the files of a format whose plug-in is missing, named with how to install it
(never left out silently). Reading one image is image.py's."""
import logging
import os
from typing import Iterable, List, Sequence, Tuple, Union

from PIL import Image

from .image import PLUGIN_FORMATS, load_plugins

PathLike = Union[str, os.PathLike]
logger = logging.getLogger('ruclip')


def image_extensions() -> set:
    """The file extensions Pillow can open, lowercased with their dot ('.jpg', '.png', ...), with
    those of the installed plug-ins (see PLUGIN_FORMATS)."""
    load_plugins()
    return {extension.lower() for extension, format in Image.registered_extensions().items()
            if format in Image.OPEN}


def needs_plugin(paths: Iterable[str], extensions: set) -> List[Tuple[str, str]]:
    """(path, reason) for each of `paths` whose extension is a PLUGIN_FORMATS one missing from
    `extensions` (image_extensions()); the reason names the format and how to install its reader.
    Logs one warning for them all, naming the first few and the fix."""
    unreadable = []
    for path in paths:
        known = PLUGIN_FORMATS.get(os.path.splitext(path)[1].lower())
        if known and os.path.splitext(path)[1].lower() not in extensions:
            unreadable.append((path, f'{path}: {known[0]} files need a Pillow plug-in, not installed: {known[2]}'))
    if unreadable:
        kinds = sorted({PLUGIN_FORMATS[os.path.splitext(path)[1].lower()] for path, _ in unreadable})
        names = ', '.join(path for path, _ in unreadable[:3]) + (', ...' if len(unreadable) > 3 else '')
        fixes = '; '.join(f'{kind}: {fix}' for kind, _, fix in kinds)
        logger.warning('skipped %d file%s that Pillow cannot read without a plug-in (%s); to read them, %s',
                       len(unreadable), 's' if len(unreadable) > 1 else '', names, fixes)
    return unreadable


class ImageFiles(list):
    """The list of image files find_images returns; `unreadable` holds (folder or file, reason) for
    each folder that could not be listed, whose images are therefore missing, and each file of a
    format whose Pillow plug-in is not installed (needs_plugin); embed_images reports them among
    its skipped files."""

    def __init__(self, files: Iterable[str] = (), unreadable: Sequence[Tuple[str, str]] = ()):
        super().__init__(files)
        self.unreadable = list(unreadable)


def find_images(paths: Union[PathLike, Iterable[PathLike]], recursive: bool = True) -> ImageFiles:
    """Image files from files and folders, in a stable order.

    A file is taken as given, whatever its extension; a folder gives its files with an image
    extension (see image_extensions), sorted, descending into subfolders when `recursive`. A
    folder that cannot be listed (permissions, I/O) is named in a warning on the 'ruclip' logger
    and in the result's `unreadable`, as an unreadable file is by embed_images.
    A file of a format whose plug-in is missing (HEIC without pillow-heif) is named in one warning
    with the install command, and in `unreadable` (see needs_plugin).

    Args:
        paths: one file or folder, or an iterable of them.
        recursive: descend into subfolders.

    Returns:
        An ImageFiles, a list of the paths (str) whose `unreadable` attribute holds
        `(folder, reason)` for each folder that could not be listed.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: no image found.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(path) for path in paths]
    extensions = image_extensions()
    found = ImageFiles()
    plugin_needed = []
    for path in paths:
        if os.path.isdir(path):
            found.extend(_folder_images(path, extensions, recursive, found.unreadable, plugin_needed))
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise FileNotFoundError(f'no such image file or folder: {path}')
    found.unreadable.extend(needs_plugin(plugin_needed, extensions))
    if not found:
        count = len(found.unreadable)
        unreadable = f'; {count} folder{"s" if count > 1 else ""} or file{"s" if count > 1 else ""} could not be ' \
                     f'read (named above)' if count else ''
        raise ValueError(f'no image files in {", ".join(paths) or "an empty list of paths"} '
                         f'(looked for the extensions Pillow opens, e.g. .jpg, .png, .webp){unreadable}')
    return found


def _folder_images(folder: str, extensions: set, recursive: bool, unreadable: list,
                   plugin_needed: list) -> List[str]:
    def cannot_list(error: OSError) -> None:
        path = error.filename if error.filename is not None else folder
        reason = f'cannot read folder {path}: {error.strerror or error}'
        logger.warning('skipped: %s', reason)
        unreadable.append((os.fspath(path), reason))

    found = []
    for root, folders, names in os.walk(folder, onerror=cannot_list):
        folders[:] = sorted(name for name in folders if not name.startswith('.')) if recursive else []
        for name in sorted(names):
            extension = os.path.splitext(name)[1].lower()
            if not name.startswith('.') and (extension in extensions or extension in PLUGIN_FORMATS):
                (found if extension in extensions else plugin_needed).append(os.path.join(root, name))
    return found
