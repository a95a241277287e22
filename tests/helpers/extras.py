"""--all-extras: a test skipped for a missing package fails instead (the README's test command, which CI
runs with every extra installed, so no skip can hide a failure there). A pytest plugin, loaded by
tests/conftest.py."""
import pytest

# how a skip for a missing package begins: pytest.importorskip's words, or ours for a system package
MISSING_PACKAGE = ("could not import '", 'not installed: ')


def pytest_addoption(parser):
    parser.addoption('--all-extras', action='store_true',
                     help="fail, instead of skipping, every test whose optional package is not installed (the "
                          "README's test command, which CI runs after installing every extra)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _fail_a_skip_for_a_missing_package(item.config, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    _fail_a_skip_for_a_missing_package(collector.config, report)
    return report


def _fail_a_skip_for_a_missing_package(config, report):
    """With --all-extras, a test (or module) skipped for a missing package (pytest.importorskip, or a skip
    whose reason starts 'not installed: ') fails instead: the run that installs every extra must run every
    test, so no skip can hide a failure there."""
    if not (report.skipped and config.getoption('all_extras') and isinstance(report.longrepr, tuple)):
        return
    path, line, reason = report.longrepr
    if reason.removeprefix('Skipped: ').startswith(MISSING_PACKAGE):
        report.outcome = 'failed'
        report.longrepr = (f'{path}:{line}: {reason.removeprefix("Skipped: ")}; --all-extras runs every test: '
                           f'install every extra (pip install -e ".[test]")')
