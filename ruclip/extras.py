"""Optional dependencies, imported when first needed, with an error naming the extra that installs them."""
import importlib
import re
from types import ModuleType
from typing import Optional, Tuple


def require(module: str, extra: str, purpose: str, min_version: Optional[Tuple[int, ...]] = None) -> ModuleType:
    """Import `module` for `purpose`, or raise ImportError saying `pip install 'ruclip[extra]'`."""
    try:
        imported = importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{purpose} needs the '{module}' package, which is not installed ({error}); "
                          f"install it with: pip install 'ruclip[{extra}]'") from None
    if min_version is not None and _version_tuple(getattr(imported, '__version__', '0')) < min_version:
        wanted = '.'.join(map(str, min_version))
        raise ImportError(f"{purpose} needs {module}>={wanted}, found {imported.__version__}; "
                          f"upgrade it with: pip install -U 'ruclip[{extra}]'")
    return imported


def _version_tuple(version: str) -> Tuple[int, ...]:
    """'0.19.1' -> (0, 19, 1); a suffix such as 'rc1' or '+cpu' ends the tuple."""
    return tuple(int(part) for part in re.match(r'[\d.]*', version).group().split('.') if part)
