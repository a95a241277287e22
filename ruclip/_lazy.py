"""A package's public names imported on first use (PEP 562), so importing the package is cheap."""
import importlib
import sys
from typing import Callable, Dict, Iterable, Tuple


def lazy_names(package: str, where: Dict[str, str], modules: Iterable[str] = ()) -> Tuple[Callable, Callable]:
    """(__getattr__, __dir__) for `package`: `where` maps each name to the submodule defining it;
    `modules` are submodules exported by name."""
    modules = list(modules)

    def __getattr__(name: str):
        if name in modules:
            return importlib.import_module(f'{package}.{name}')
        if name not in where:
            raise AttributeError(f'module {package!r} has no attribute {name!r}')
        value = getattr(importlib.import_module(f'{package}.{where[name]}'), name)
        setattr(sys.modules[package], name, value)  # found directly from now on
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(modules) | set(where))

    return __getattr__, __dir__
