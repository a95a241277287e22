"""The docs site builds with `mkdocs build --strict`: a broken link or anchor, a page missing from the
nav, a docstring reference to a moved name, or an unreadable included file fails the build."""
import os
import subprocess
import sys

import pytest

from helpers.doc_blocks import ROOT

pytest.importorskip('mkdocs')  # the [docs] extra, part of [test]
pytest.importorskip('material')
pytest.importorskip('mkdocstrings_handlers.python')


def test_docs_build_strictly_with_every_command_in_the_reference(tmp_path):
    site = tmp_path / 'site'
    environment = dict(os.environ, NO_MKDOCS_2_WARNING='1')
    build = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict', '--config-file',
                            str(ROOT / 'mkdocs.yml'), '--site-dir', str(site)],
                           cwd=ROOT, env=environment, capture_output=True, text=True, timeout=240)
    assert build.returncode == 0, build.stderr[-4000:]

    from ruclip.cli import COMMANDS
    from ruclip.cli._common import EXIT_CODES
    reference = (site / 'cli' / 'index.html').read_text(encoding='utf-8')
    for name, _, _ in COMMANDS:  # generated from the parsers: a new command appears with its options
        assert f'id="ruclip-{name}"' in reference, name
    assert '--batch-size' in reference and all(f'<td>{code}</td>' in reference for code in EXIT_CODES)
    api = (site / 'api' / 'index.html').read_text(encoding='utf-8')
    assert 'id="ruclip.pretrained.load"' in api and 'id="ruclip.predictor.Predictor"' in api
