"""Optional dependencies, imported when first needed, with an error naming the extra that installs them."""
import importlib
import re
from types import ModuleType
from typing import Optional, Tuple


def require(module: str, extra: str, purpose: str, min_version: Optional[Tuple[int, ...]] = None) -> ModuleType:
    """Import `module` for `purpose`, or raise ImportError saying `pip install 'ruclip[extra]'`.

    The message names the module that failed to import, which may be one `module` itself imports.
    """
    try:
        imported = importlib.import_module(module)
    except ImportError as error:
        missing = (error.name or module).split('.')[0]
        raise ImportError(f"{purpose} needs the '{missing}' package, which is not installed or does not import "
                          f"({error}); install it with: pip install 'ruclip[{extra}]'") from None
    if min_version is not None and _version_tuple(getattr(imported, '__version__', '0')) < min_version:
        wanted = '.'.join(map(str, min_version))
        raise ImportError(f"{purpose} needs {module}>={wanted}, found {imported.__version__}; "
                          f"upgrade it with: pip install -U '{module}>={wanted}'")
    return imported


def _version_tuple(version: str) -> Tuple[int, ...]:
    """'0.19.1' -> (0, 19, 1); a suffix such as 'rc1' or '+cpu' ends the tuple."""
    return tuple(int(part) for part in re.match(r'[\d.]*', version).group().split('.') if part)
