"""The original ruclip==0.0.2, fetched from PyPI beside ours (never copied into this repo).

Its package is also called `ruclip`, and its __init__ imports huggingface_hub.cached_download, which
current hub clients no longer have; so its model, processor and predictor modules are loaded
directly, under the name `ruclip_original`. They need torchvision, youtokentome and more_itertools.
"""
import importlib.util
import os
import subprocess
import sys
import types
from pathlib import Path

VERSION = '0.0.2'
DEFAULT_DIR = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'ruclip-tests' / f'original-{VERSION}'


def install_original(target: Path = None) -> Path:
    """pip-install ruclip==0.0.2 (without its pinned dependencies) and more-itertools into `target`."""
    target = Path(os.environ.get('RUCLIP_ORIGINAL_DIR', target or DEFAULT_DIR))
    if not (target / 'ruclip' / 'predictor.py').is_file() or not (target / 'more_itertools').is_dir():
        command = [sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--upgrade',
                   '--target', str(target), f'ruclip=={VERSION}', 'more-itertools==8.12.0']
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f'could not install the original ruclip=={VERSION} from PyPI into {target}:\n'
                               f'{result.stdout}\n{result.stderr}')
    return target


def load_original(target: Path = None) -> types.SimpleNamespace:
    """The original's modules: namespace(model=..., processor=..., predictor=...)."""
    if 'ruclip_original' not in sys.modules:
        target = install_original(target)
        if str(target) not in sys.path:
            sys.path.append(str(target))  # for more_itertools; our own ruclip stays first on the path
        package = types.ModuleType('ruclip_original')
        package.__path__ = [str(target / 'ruclip')]
        sys.modules['ruclip_original'] = package
        for name in ('model', 'processor', 'predictor'):
            spec = importlib.util.spec_from_file_location(f'ruclip_original.{name}', target / 'ruclip' / f'{name}.py')
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            setattr(package, name, module)
    package = sys.modules['ruclip_original']
    return types.SimpleNamespace(model=package.model, processor=package.processor, predictor=package.predictor)
