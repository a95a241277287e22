"""Every public function of `import ruclip` and `ruclip.distributed`, and every public method of the
main classes, states its contract in Google style: an Args entry for each parameter, a Returns (or
Yields) section when it returns something, and nothing documented that the signature lacks. The docs
build (tests/docs/test_docs_build.py) renders them; this test makes a missing argument fail, which
rendering cannot."""
import inspect

import pytest

import ruclip

griffe = pytest.importorskip('griffe')  # the [docs] extra, part of [test]

# classes whose constructor (documented in the class docstring) and public methods are checked
CLASSES = ['Predictor', 'RuCLIPProcessor', 'CLIP', 'ImageIndex', 'OnnxCLIP']


@pytest.fixture(scope='module')
def package():
    return griffe.load('ruclip', search_paths=[str(__import__('pathlib').Path(ruclip.__file__).parents[1])])


def documented(package, path: str):
    """The griffe object at `path` (e.g. 'ruclip.zero_shot.classify'), following re-exports."""
    obj = package[path.removeprefix('ruclip.')]
    return obj.final_target if obj.is_alias else obj


def sections(obj):
    assert obj.docstring is not None, f'{obj.path} has no docstring'
    parsed = obj.docstring.parse('google', returns_named_value=False, returns_multiple_items=False)
    return {section.kind.value: section for section in parsed}


def check(obj, parameters, returns: bool):
    found = sections(obj)
    stars = {'variadic positional': '*', 'variadic keyword': '**'}
    named = [stars.get(p.kind.value, '') + p.name for p in parameters if p.name not in ('self', 'cls')]
    listed = [p.name for p in found['parameters'].value] if 'parameters' in found else []
    assert sorted(listed) == sorted(named), f'{obj.path}: Args lists {listed}, the signature has {named}'
    if returns:
        assert 'returns' in found or 'yields' in found, f'{obj.path} returns a value but has no Returns section'


def public_functions():
    import ruclip.distributed

    for package in (ruclip, ruclip.distributed):
        for name in package.__all__:
            value = getattr(package, name)
            if inspect.isfunction(value) and value.__module__ != package.__name__:  # not a lazy wrapper
                yield name, f'{value.__module__}.{value.__qualname__}'
    yield 'run_ray', 'ruclip.distributed.ray_engine.run_ray'  # ruclip.distributed imports Ray when it is called
    for name, module in (('load_split', 'datasets'), ('write_result', 'results'), ('read_results', 'results'),
                         ('report_table', 'results')):  # ruclip.evaluation's, on the API page
        yield name, f'ruclip.evaluation.{module}.{name}'


@pytest.mark.parametrize('name, path', list(public_functions()))
def test_each_public_function_states_its_contract(package, name, path):
    function = documented(package, path)
    check(function, function.parameters, returns=str(function.returns) not in ('None', ''))


@pytest.mark.parametrize('name', CLASSES)
def test_each_main_class_states_its_contract(package, name):
    value = getattr(ruclip, name)
    cls = documented(package, f'{value.__module__}.{value.__qualname__}')
    check(cls, cls.members['__init__'].parameters, returns=False)
    for member_name, member in cls.members.items():
        if member_name.startswith('_') or member.is_alias or member.kind.value != 'function':
            continue
        if 'property' in member.labels:
            continue
        check(member, member.parameters, returns=str(member.returns) not in ('None', ''))
