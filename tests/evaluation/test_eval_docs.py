"""docs/evaluate.md's Python example, run as written on a tiny Food101 copy and a tiny trained checkpoint."""
import pytest

from helpers.checkpoints import write_checkpoint
from helpers.doc_blocks import DOCS, code_blocks
from helpers.eval_data import SMALL_ARCHITECTURE, train_colour_checkpoint, write_food101
from ruclip.evaluation import prompts


def docs_example() -> str:
    (block,) = code_blocks(DOCS / 'evaluate.md')
    return block


def test_docs_evaluation_example_runs(tmp_path, monkeypatch, bpe_model, capsys):
    pytest.importorskip('torchvision')
    base = write_checkpoint(tmp_path / 'base', SMALL_ARCHITECTURE, bpe_model)
    model = train_colour_checkpoint(base, tmp_path / 'model')
    write_food101(tmp_path / 'data', prompts.english_names('food101'), per_class=2)
    monkeypatch.chdir(tmp_path)
    code = docs_example()
    assert "ruclip.load('ruclip-vit-base-patch32-224')" in code and "load_split('food101', 'data/')" in code
    code = code.replace("ruclip.load('ruclip-vit-base-patch32-224')", f"ruclip.load({str(model)!r})")
    namespace = {}
    exec(compile(code, 'docs/evaluate.md', 'exec'), namespace)
    assert namespace['record']['dataset'] == 'food101' and namespace['record']['n_images'] == 8
    assert (tmp_path / 'food101.json').is_file()
    out = capsys.readouterr().out
    assert "'acc1'" in out and '| food101, acc1 |' in out
    assert namespace['sentences'].shape == (2, 24)
