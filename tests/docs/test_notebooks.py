"""Every notebook in examples/ runs top to bottom, its parameter cell pointed at the tests' tiny checkpoint.

As papermill does, a cell setting the parameters is put after the one tagged `parameters`; the
install cell runs too (ruclip is importable here, so it installs nothing). Each runs in a fresh
kernel in its own temporary folder. The committed notebooks carry no outputs: numbers from random
weights must never be mistaken for RuCLIP's.
"""
from pathlib import Path

import pytest

from helpers.doc_blocks import ROOT

nbformat = pytest.importorskip('nbformat')  # the [test] extra
nbclient = pytest.importorskip('nbclient')

NOTEBOOKS = sorted((ROOT / 'examples').glob('*.ipynb'))


def test_the_notebooks_are_found_and_carry_no_outputs():
    assert {path.name for path in NOTEBOOKS} >= {'zero_shot.ipynb', 'search_photos.ipynb', 'evaluate.ipynb',
                                                  'deploy.ipynb', 'rank_generated.ipynb', 'finetune.ipynb'}
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == 'code']
        assert 'install' in code[0].metadata.get('tags', []), f'{path.name}: the first code cell installs ruclip'
        assert 'parameters' in code[1].metadata.get('tags', []), f'{path.name}: the second names the model'
        assert "MODEL = 'ruclip-vit-base-patch32-384'" in code[1].source
        assert all(not cell.outputs and cell.execution_count is None for cell in code), f'{path.name} has outputs'


SLOW = {'deploy.ipynb'}  # an ONNX export and an OpenVINO compile: most of a minute


@pytest.mark.parametrize('path', [pytest.param(path, marks=pytest.mark.slow) if path.name in SLOW else path
                                  for path in NOTEBOOKS], ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs(path, tiny_checkpoint, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    position = next(i for i, cell in enumerate(notebook.cells) if 'parameters' in cell.metadata.get('tags', []))
    injected = nbformat.v4.new_code_cell(f'MODEL = {str(tiny_checkpoint)!r}',
                                         metadata={'tags': ['injected-parameters']})
    notebook.cells.insert(position + 1, injected)
    client = nbclient.NotebookClient(notebook, timeout=240, kernel_name='python3',
                                     resources={'metadata': {'path': str(tmp_path)}})
    client.execute()  # raises CellExecutionError naming the cell and its traceback
    printed = ''.join(output.get('text', '') for cell in notebook.cells if cell.cell_type == 'code'
                      for output in cell.outputs)
    assert printed, f'{path.name} printed nothing'
    assert not list(Path(path.parent).glob('*.png')), 'a notebook wrote into examples/'
