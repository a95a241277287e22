"""The package's layering, which a newcomer reads off the folder tree: the top level is the library,
`_name.py` is plumbing, a folder is a capability (with its extra) or the command line.

The rule, checked on every import statement, at module level or inside a function alike:
- the core (the top level and its plumbing) imports only the core, with one exception: ruclip.load
  (ruclip.pretrained) imports ruclip.backends when it is called, because a backend is how load runs
  a model; never at module level, so `import ruclip` imports no capability;
- a capability imports the core and itself, never the command line, and another capability only
  where CAPABILITY_USES declares it (its extra then includes that one's packages): training reads
  tables with distributed's readers and scores with evaluation's metrics;
- the command line imports anything; ruclip/__init__.py names the capabilities' public names in a
  table (strings), imported on first use;
- and the modules' imports form no circle.
"""
import ast
import importlib
from pathlib import Path

import pytest

import ruclip

PACKAGE = Path(ruclip.__file__).resolve().parent
CAPABILITIES = {'export', 'search', 'distributed', 'evaluation', 'backends', 'serve', 'training'}
CORE_CALLS_A_CAPABILITY = {('ruclip.pretrained', 'ruclip.backends')}  # inside load() only
CAPABILITY_USES = {'training': {'distributed', 'evaluation'},  # and no other capability another
                   'serve': {'search'}}  # the search page: an index's date and tag filters, its duplicates


def modules():
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = path.relative_to(PACKAGE).with_suffix('').parts
        yield '.'.join(('ruclip',) + parts).removesuffix('.__init__'), path


def imported(path: Path, name: str):
    """(the ruclip module imported, whether at module level) for every import statement of `path`
    (module `name`), anywhere in it; names are absolute."""
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    tree = ast.parse(path.read_text(encoding='utf-8'))
    module_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        at_module_level = id(node) in module_level
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit('.', node.level - 1)[0] if node.level else ''
            target = f'{base}.{node.module}' if node.level and node.module else (node.module or base)
            if target.startswith('ruclip'):
                yield target, at_module_level
                for alias in node.names:  # `from . import cli` imports a module
                    yield f'{target}.{alias.name}', at_module_level
        elif isinstance(node, ast.Import):
            yield from ((alias.name, at_module_level) for alias in node.names if alias.name.startswith('ruclip'))


def area(module: str) -> str:
    """'core' for the top level and its plumbing, else the folder: 'cli', 'export', 'search', ..."""
    parts = module.split('.')
    return parts[1] if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() and len(parts) == 2 else 'core'


@pytest.mark.parametrize('name, path', list(modules()), ids=lambda value: str(value))
def test_no_module_imports_a_higher_layer(name, path):
    known = {module for module, _ in modules()}
    if name == 'ruclip.__main__':
        return  # `python -m ruclip`: the command line's entry point
    for target, at_module_level in imported(path, name):
        if target not in known:
            continue  # a name imported from a module, not a module
        if area(name) == 'core' and area(target) != 'core':
            allowed = (name, target) in CORE_CALLS_A_CAPABILITY and not at_module_level
            assert allowed, f'{name} (the core) imports {target}'
        elif area(name) in CAPABILITIES:
            allowed = {'core', area(name)} | CAPABILITY_USES.get(area(name), set())
            assert area(target) in allowed, f'{name} imports {target}, another capability or the CLI'


def test_the_imports_form_no_circle():
    """Each module's imports (inside functions too) lead back to it by no path: a package's own
    __init__ importing its modules is not counted back from them."""
    known = {module for module, _ in modules()}
    graph = {name: {target for target, _ in imported(path, name)
                    if target in known and target != name and not name.startswith(target + '.')}
             for name, path in modules()}

    def path_back(start):
        stack, seen = [(start, [start])], set()
        while stack:
            module, trail = stack.pop()
            for target in graph.get(module, ()):
                if target == start:
                    return trail + [start]
                if target not in seen:
                    seen.add(target)
                    stack.append((target, trail + [target]))
        return None

    circles = [' -> '.join(circle) for circle in map(path_back, graph) if circle]
    assert circles == []


def test_every_public_name_resolves_and_private_modules_export_none():
    for name in ruclip.__all__:
        assert getattr(ruclip, name) is not None
    for module, path in modules():
        if module.rpartition('.')[2].startswith('_') and not module.endswith('__main__'):
            assert not getattr(importlib.import_module(module), '__all__', []), f'{module} is private'
    for original in ('ruclip.model', 'ruclip.processor', 'ruclip.predictor'):
        importlib.import_module(original)  # the original's module names stay importable
