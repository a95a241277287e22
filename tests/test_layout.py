"""The package's layering, which a newcomer reads off the folder tree: the top level is the library,
`_name.py` is plumbing, a folder is a capability (with its extra) or the command line. Checked on the
module-level imports, which run at import time; imports inside functions are lazy hooks."""
import ast
import importlib
from pathlib import Path

import pytest

import ruclip

PACKAGE = Path(ruclip.__file__).resolve().parent
CAPABILITIES = {'export', 'search', 'distributed', 'evaluation', 'backends', 'training'}


def modules():
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(PACKAGE).with_suffix('').parts
        yield '.'.join(('ruclip',) + parts).removesuffix('.__init__'), path


def imported(path: Path, name: str):
    """The ruclip modules `path` (module `name`) imports at module level, as absolute names."""
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    for node in ast.parse(path.read_text(encoding='utf-8')).body:
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit('.', node.level - 1)[0] if node.level else ''
            target = f'{base}.{node.module}' if node.level and node.module else (node.module or base)
            if target.startswith('ruclip'):
                yield target
                for alias in node.names:  # `from . import cli` imports a module
                    yield f'{target}.{alias.name}'
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith('ruclip'))


def area(module: str) -> str:
    """'core' for the top level and its plumbing, else the folder: 'cli', 'export', 'search', ..."""
    parts = module.split('.')
    return parts[1] if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() and len(parts) == 2 else 'core'


@pytest.mark.parametrize('name, path', list(modules()), ids=lambda value: str(value))
def test_no_module_imports_a_higher_layer(name, path):
    known = {module for module, _ in modules()}
    if name == 'ruclip.__main__':
        return  # `python -m ruclip`: the command line's entry point
    for target in imported(path, name):
        if target not in known:
            continue  # a name imported from a module, not a module
        if area(name) == 'core':
            assert area(target) == 'core', f'{name} (the core) imports {target}'
        elif area(name) in CAPABILITIES:
            assert area(target) in ('core', area(name)), f'{name} imports {target}, another capability or the CLI'


def test_every_public_name_resolves_and_private_modules_export_none():
    for name in ruclip.__all__:
        assert getattr(ruclip, name) is not None
    for module, path in modules():
        if module.rpartition('.')[2].startswith('_') and not module.endswith('__main__'):
            assert not getattr(importlib.import_module(module), '__all__', []), f'{module} is private'
    for original in ('ruclip.model', 'ruclip.processor', 'ruclip.predictor'):
        importlib.import_module(original)  # the original's module names stay importable
