"""Image files: finding them in folders."""
import os
from typing import Iterable, List, Union

from PIL import Image

PathLike = Union[str, os.PathLike]


def image_extensions() -> set:
    """The file extensions Pillow can open, lowercased with their dot ('.jpg', '.png', ...)."""
    return {extension.lower() for extension, format in Image.registered_extensions().items()
            if format in Image.OPEN}


def find_images(paths: Union[PathLike, Iterable[PathLike]], recursive: bool = True) -> List[str]:
    """Image files from files and folders, in a stable order.

    A file is taken as given, whatever its extension; a folder gives its files with an image
    extension (see image_extensions), sorted, descending into subfolders when `recursive`.
    Raises FileNotFoundError for a path that does not exist, ValueError when no image is found.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(path) for path in paths]
    extensions = image_extensions()
    found = []
    for path in paths:
        if os.path.isdir(path):
            found.extend(_folder_images(path, extensions, recursive))
        elif os.path.isfile(path):
            found.append(path)
        else:
            raise FileNotFoundError(f'no such image file or folder: {path}')
    if not found:
        raise ValueError(f'no image files in {", ".join(paths) or "an empty list of paths"} '
                         f'(looked for the extensions Pillow opens, e.g. .jpg, .png, .webp)')
    return found


def _folder_images(folder: str, extensions: set, recursive: bool) -> List[str]:
    found = []
    for root, folders, names in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith('.')) if recursive else []
        found.extend(os.path.join(root, name) for name in sorted(names)
                     if not name.startswith('.') and os.path.splitext(name)[1].lower() in extensions)
    return found
