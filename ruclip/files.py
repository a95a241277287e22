"""Image files: finding them in folders and reading them, skipping the unreadable ones."""
import logging
import os
from typing import Callable, Iterable, Iterator, List, Optional, Tuple, Union

from PIL import Image

from .image import open_image

logger = logging.getLogger('ruclip')
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


def read_images(paths: Iterable[PathLike], on_skip: Optional[Callable[[str, str], None]] = None
                ) -> Iterator[Tuple[str, Image.Image]]:
    """(path, image) for each file, opened lazily; an unreadable or missing one is logged as a
    warning (logger 'ruclip'), passed to on_skip(path, reason) and left out."""
    for path in map(os.fspath, paths):
        try:
            image = open_image(path)
        except (OSError, ValueError) as error:
            logger.warning('skipped: %s', error if path in str(error) else f'{path}: {error}')
            if on_skip is not None:
                on_skip(path, str(error))
            continue
        yield path, image
