"""`ruclip eval scoreboard`: models x benchmarks on tiny copies of the real layouts, one table beside
the published figures of the same protocol, resumable from its result files."""
import json
import os
import shutil

import pytest
import torch

from benchmark_layouts import write_babel_imagenet, write_coco_sm, write_xm3600, write_xtd10
from helpers.checkpoints import write_checkpoint
from helpers.eval_data import SMALL_ARCHITECTURE
from ruclip.cli import main
from ruclip.evaluation.scoreboard import model_slug, scoreboard_table

open_clip = pytest.importorskip('open_clip')
TINY_OPEN_CLIP = {'embed_dim': 16,
                  'vision_cfg': {'image_size': 32, 'layers': 1, 'width': 32, 'head_width': 16, 'patch_size': 16},
                  'text_cfg': {'context_length': 16, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 1}}
PROTOCOLS = ['xm3600-immich', 'xtd10', 'coco-sm', 'babel-imagenet', 'babel-imagenet-label']


@pytest.fixture
def setup(tmp_path, bpe_model):
    data = tmp_path / 'data'
    write_xm3600(data / 'xm3600')
    write_xtd10(data / 'xtd10')
    write_coco_sm(data / 'coco_sm')
    (data / 'imagenet').mkdir()
    write_babel_imagenet(data / 'imagenet')
    ruclip_model = write_checkpoint(tmp_path / 'ruclip-vit-base-patch32-224', SMALL_ARCHITECTURE, bpe_model)
    config = tmp_path / 'tiny-board-clip.json'
    config.write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(str(config))
    torch.manual_seed(0)
    torch.save(open_clip.create_model('tiny-board-clip').state_dict(), tmp_path / 'weights.pt')
    peer = f'open_clip:{config}@{tmp_path / "weights.pt"}'
    common = ['--data-root', str(data), '--out-dir', str(tmp_path / 'out'), '--feature-cache', str(tmp_path / 'cache'),
              '--device', 'cpu', '--backend', 'torch', '-q']
    return data, str(ruclip_model), peer, common, tmp_path / 'out'


def test_scoreboard_scores_ruclip_and_a_peer_beside_the_published_figures(setup, capsys):
    data, ruclip_model, peer, common, out = setup
    assert main(['eval', 'scoreboard', '--models', ruclip_model, peer, '--benchmarks', *PROTOCOLS, *common]) == 0
    table = (out / 'scoreboard.md').read_text(encoding='utf-8')
    assert table == capsys.readouterr().out
    for protocol in PROTOCOLS:
        assert f'## {protocol}\n' in table
        for model in (ruclip_model, peer):
            record = json.loads((out / model_slug(model) / f'{protocol}.json').read_text(encoding='utf-8'))
            assert record['protocol'] == protocol and record['model'] == model
    assert '| ViT-B-16-SigLIP2__webli | published (immich) | 0.8429 |' in table  # immich's figure, under its protocol
    assert '| ruclip-vit-base-patch32-224 | this run |' in table
    immich = table.split('## xm3600-immich')[1].split('## ')[0]
    assert 'uform' not in immich  # COCO-SM's published figures stay in COCO-SM's table


def test_scoreboard_resumes_from_its_result_files(setup, capsys):
    data, ruclip_model, peer, common, out = setup
    assert main(['eval', 'scoreboard', '--models', ruclip_model, '--benchmarks', 'xtd10', 'coco-sm', *common]) == 0
    first = (out / model_slug(ruclip_model) / 'coco-sm.json').read_bytes()
    shutil.rmtree(data / 'coco_sm')  # a second run reads the results back: it needs no data
    assert main(['eval', 'scoreboard', '--models', ruclip_model, '--benchmarks', 'xtd10', 'coco-sm', *common]) == 0
    assert (out / model_slug(ruclip_model) / 'coco-sm.json').read_bytes() == first
    assert '## coco-sm' in capsys.readouterr().out


def test_report_puts_scoreboard_results_in_the_scoreboard_table(setup, capsys):
    data, ruclip_model, peer, common, out = setup
    assert main(['eval', 'scoreboard', '--models', ruclip_model, '--benchmarks', 'xtd10', *common]) == 0
    capsys.readouterr()
    assert main(['eval', 'report', str(out / model_slug(ruclip_model) / 'xtd10.json')]) == 0
    table = capsys.readouterr().out
    assert '## xtd10\n' in table and '| ruclip-vit-base-patch32-224 | this run |' in table


def test_scoreboard_names_what_it_could_not_score_and_scores_the_rest(setup, capsys):
    data, ruclip_model, peer, common, out = setup
    shutil.rmtree(data / 'xtd10')
    code = main(['eval', 'scoreboard', '--models', ruclip_model, '--benchmarks', 'xtd10', 'xm3600-immich', *common])
    assert code == 3
    assert 'not scored: ' in capsys.readouterr().err
    assert os.path.isfile(out / model_slug(ruclip_model) / 'xm3600-immich.json')
    assert not os.path.exists(out / model_slug(ruclip_model) / 'xtd10.json')


def test_scoreboard_refuses_an_unknown_benchmark(setup, capsys):
    data, ruclip_model, peer, common, out = setup
    assert main(['eval', 'scoreboard', '--models', ruclip_model, '--benchmarks', 'xm3601', *common]) == 2
    assert 'xm3600-immich' in capsys.readouterr().err
    assert main(['eval', 'scoreboard', '--models', ruclip_model, '--root', f'xm3601={data}', *common]) == 2
    assert "'xm3601' is not a benchmark" in capsys.readouterr().err


def test_the_table_without_runs_still_shows_the_published_figures():
    table = scoreboard_table([])
    assert '## babel-imagenet\n' in table and '| ViT-B-16-SigLIP-i18n-256@webli | published (babel-imagenet) | 0.6016 |' in table
    assert '## xm3600-mteb' not in table  # no published figure shipped, nothing measured


def test_the_gpu_script_names_only_models_and_benchmarks_the_command_knows():
    import re
    from pathlib import Path
    from ruclip import MODELS
    from ruclip.evaluation.scoreboard import benchmark_names
    script = (Path(__file__).resolve().parents[2] / 'benchmarks' / 'scoreboard.sh').read_text()

    def array(name):
        return re.search(name + r'=\(([^)]*)\)', script).group(1).split()
    assert set(array('MODELS')) == set(MODELS)
    assert set(array('BENCHMARKS')) == set(benchmark_names())  # every protocol and README dataset
    assert 'xtd10' in array('BENCHMARKS') and '--download' in script
