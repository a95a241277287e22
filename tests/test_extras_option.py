"""--all-extras turns a skip for a missing package into a failure, and leaves every other skip alone."""
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SAMPLE = '''
import pytest

def test_needs_a_package():
    pytest.importorskip('ruclip_no_such_package')

def test_needs_a_system_package():
    pytest.skip('not installed: a browser')

def test_skipped_for_another_reason():
    pytest.skip('only on Windows')

def test_passes():
    pass
'''


def run_sample(tmp_path, *options):
    (tmp_path / 'test_sample.py').write_text(SAMPLE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get('PYTHONPATH', '')]),
               PYTEST_DISABLE_PLUGIN_AUTOLOAD='1')  # only the plugin under test
    return subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rs', '-p', 'helpers.extras', '-p', 'no:cacheprovider',
                           *options, str(tmp_path / 'test_sample.py')], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_without_the_option_a_missing_package_is_a_skip_that_names_it(tmp_path):
    result = run_sample(tmp_path)
    assert result.returncode == 0, result.stdout
    assert "could not import 'ruclip_no_such_package'" in result.stdout and '1 passed, 3 skipped' in result.stdout


def test_with_the_option_a_missing_package_fails_the_run(tmp_path):
    result = run_sample(tmp_path, '--all-extras')
    assert result.returncode == 1, result.stdout
    assert '2 failed, 1 passed, 1 skipped' in result.stdout
    assert "ruclip_no_such_package" in result.stdout and '--all-extras runs every test' in result.stdout
