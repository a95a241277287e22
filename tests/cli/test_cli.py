"""The `ruclip` command against a tiny checkpoint folder: every subcommand, its numbers, its exit codes."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ruclip
from helpers.cli import run
from ruclip._device import auto_dtype, cpu_class
from ruclip.backends.openvino import auto_fallback
from ruclip.cli import main

REPO = Path(__file__).resolve().parents[2]
LABELS = ['кошка', 'собака', 'лошадь', 'птица']
CAPTIONS = ['кошка спит на диване', 'собака бежит по полю', 'красный дом у реки']
TORCH_FP32 = ['--backend', 'torch', '--dtype', 'fp32']  # the library's numbers these tests compare with


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """A folder of 5 readable images (one in a subfolder), a broken .jpg and a text file."""
    folder = tmp_path_factory.mktemp('photos')
    rng = np.random.default_rng(0)
    (folder / 'more').mkdir()
    for name in ('a.png', 'b.jpg', 'c.png', 'd.webp', 'more/e.png'):
        Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(folder / name)
    (folder / 'broken.jpg').write_bytes(b'not a jpeg')
    (folder / 'notes.txt').write_text('not an image')
    return folder


@pytest.fixture(scope='module')
def readable(photos):
    return [str(photos / name) for name in ('a.png', 'b.jpg', 'c.png', 'd.webp', 'more/e.png')]


@pytest.fixture(scope='module')
def predictor(tiny_checkpoint):
    clip, processor = ruclip.load(tiny_checkpoint)
    return ruclip.Predictor(clip, processor, 'cpu', bs=2, quiet=True)


@pytest.fixture(scope='module')
def openvino():
    return pytest.importorskip('openvino')  # the [openvino] extra: what the defaults run when it is installed


@pytest.fixture(scope='module')
def default_model(tiny_checkpoint, openvino_cache, openvino):
    """What the model options' defaults (--backend auto --dtype auto) load here, built now: the tests in
    fresh processes then find it cached (a build would write NNCF's progress to their stderr)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('RUCLIP_OPENVINO_CACHE', str(openvino_cache))
        return ruclip.load(tiny_checkpoint, backend='auto', dtype='auto')


def test_models_lists_the_six_and_finds_the_cached_one_without_the_network(capsys, monkeypatch, hub_cache, openvino):
    def no_network(*args, **kwargs):
        raise AssertionError('`ruclip models` must not touch the network')

    monkeypatch.setattr(socket.socket, 'connect', no_network)
    code, out, _ = run(capsys, 'models', '--cache-dir', hub_cache, '--json')
    assert code == 0
    infos = json.loads(out)
    assert [info['name'] for info in infos] == list(ruclip.MODELS)
    cached = infos[0]
    snapshot = Path(cached['folder'])
    assert cached['cached'] and cached['size_bytes'] == sum(
        os.path.getsize(snapshot / name) for name in ('bpe.model', 'config.json', 'pytorch_model.bin'))
    assert [(info['vit'], info['image_size'], info['cached']) for info in infos[1:]] == [
        ('ViT-B/16', 224, False), ('ViT-L/14', 224, False), ('ViT-L/14', 336, False), ('ViT-B/32', 384, False),
        ('ViT-B/16', 384, False)]
    code, out, _ = run(capsys, 'models', '--cache-dir', hub_cache)
    table, machine = out.split('\n\n')
    header, *lines = table.splitlines()
    assert machine.startswith('this machine: --backend auto --dtype auto (the defaults) run OpenVINO int8 on the CPU '
                              f'(class {cpu_class()}) for a checkpoint whose int8 latents reach a cosine of 0.995')
    assert machine.endswith(f'else OpenVINO {auto_fallback(openvino.Core())}\n')
    assert code == 0 and header.split() == ['model', 'vit', 'image', 'size', 'cached', 'size', 'on', 'disk']
    assert lines[0].split() == ['ruclip-vit-base-patch32-224', 'ViT-B/32', '224px', 'yes',
                                f"{cached['size_bytes'] / 2**20:.1f}", 'MiB']
    assert [line.split()[3:] for line in lines[1:]] == [['no', '-']] * 5


def test_models_without_openvino_names_what_pytorch_runs(capsys, monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name, *a: None if name == 'openvino' else real(name, *a))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    code, out, _ = run(capsys, 'models')
    assert code == 0 and out.split('\n\n')[1] == (
        'this machine: --backend auto --dtype auto (the defaults) run PyTorch '
        f"{str(auto_dtype(torch.device('cpu')))[6:]} on the CPU (class {cpu_class()}; OpenVINO is not installed: pip install 'ruclip[openvino]')\n")


def test_models_describes_a_checkpoint_folder(capsys, tiny_checkpoint):
    code, out, _ = run(capsys, 'models', '--model', tiny_checkpoint, '--json')
    info, = json.loads(out)
    assert code == 0 and info['cached'] and (info['image_size'], info['patch_size']) == (224, 32)


def test_classify_json_is_the_librarys_top_k_and_skips_the_broken_file(capsys, photos, readable, predictor,
                                                                      tiny_checkpoint):
    code, out, err = run(capsys, 'classify', photos, '--labels', *LABELS, '--top-k', 4, '--json',
                         '--model', tiny_checkpoint, '--batch-size', 2, '--quiet', *TORCH_FP32)
    assert code == 1
    assert 'broken.jpg' in err and 'skipped 1 of 6 image files' in err
    result = json.loads(out)
    assert [entry['file'] for entry in result['results']] == readable
    assert [entry['file'] for entry in result['skipped']] == [str(photos / 'broken.jpg')]
    expected = ruclip.classify(predictor, readable, LABELS, k=4)
    for entry, labels, indices, scores in zip(result['results'], expected.labels, expected.indices, expected.scores):
        assert [e['label'] for e in entry['top']] == labels
        assert [e['index'] for e in entry['top']] == indices.tolist()
        np.testing.assert_allclose([e['probability'] for e in entry['top']], scores.numpy(), atol=1e-6)
        assert sum(e['probability'] for e in entry['top']) == pytest.approx(1, abs=1e-5)
    top_1 = [entry['top'][0]['index'] for entry in result['results']]
    assert top_1 == predictor.run(readable, predictor.get_text_latents(LABELS))


def test_classify_by_default_runs_the_fastest_path_here(capsys, monkeypatch, readable, default_model,
                                                        tiny_checkpoint, openvino):
    """No --backend, no --dtype: OpenVINO at its 'auto' precision (int8 where it passes its gate), the
    same numbers as ruclip.load(..., backend='auto', dtype='auto') gives in Python."""
    loaded = []
    real_load = ruclip.backends.load
    monkeypatch.setattr(ruclip.backends, 'load', lambda folder, precision: loaded.append(precision) or
                        real_load(folder, precision))
    code, out, _ = run(capsys, 'classify', *readable, '--labels', *LABELS, '--top-k', 4, '--json',
                       '--model', tiny_checkpoint, '-q')
    assert code == 0 and loaded == ['auto']
    clip, processor = default_model
    assert clip.backend == 'openvino' and clip.precision in ('int8', auto_fallback(openvino.Core()))
    expected = ruclip.classify(ruclip.Predictor(clip, processor, quiet=True), readable, LABELS, k=4)
    result = json.loads(out)['results']
    for entry, labels, scores in zip(result, expected.labels, expected.scores):
        assert [e['label'] for e in entry['top']] == labels
        np.testing.assert_allclose([e['probability'] for e in entry['top']], scores.numpy(), atol=1e-6)


def test_sharded_embed_records_what_the_defaults_resolved_to(capsys, tmp_path, readable, default_model,
                                                              tiny_checkpoint):
    """--backend auto --dtype auto are resolved once, by the run's starter: every partition runs that."""
    for options, backend, dtype in (([], 'openvino', default_model[0].precision),
                                    (TORCH_FP32, 'torch', 'float32')):
        out = tmp_path / f'shards-{backend}'
        code, _, err = run(capsys, 'embed', *readable, '--out', out, '--partitions', 2, '--model', tiny_checkpoint,
                           '-q', *options)
        assert code == 0, err
        manifest = json.loads((out / '_manifest.json').read_text())
        recorded = manifest['model_identity']
        assert (recorded['backend'], recorded['dtype']) == (backend, dtype)


@pytest.mark.parametrize('options, message', [
    (['--backend', 'torch', '--dtype', 'int8'], "int8 runs with backend='openvino'"),
    (['--backend', 'openvino', '--dtype', 'fp16'], "backend='openvino' takes dtype torch.float32, torch.bfloat16"),
    (['--backend', 'openvino', '--device', 'meta'], "backend='openvino' runs on the CPU"),
])
def test_a_backend_and_dtype_that_do_not_go_together_exit_2(capsys, readable, tiny_checkpoint, options, message):
    code, out, err = run(capsys, 'classify', readable[0], '--labels', *LABELS, '--model', tiny_checkpoint, '-q',
                         *options)
    assert code == 2 and out == '' and message in err


def test_the_model_commands_take_backend_and_dtype_defaulting_to_auto(capsys):
    for command in ('classify', 'rank', 'embed', 'eval zeroshot', 'index', 'search'):
        with pytest.raises(SystemExit):
            main([*command.split(), '--help'])
        text = ' '.join(capsys.readouterr().out.split())
        assert '--backend {torch,openvino,auto}' in text and '--dtype {fp32,bf16,fp16,int8,auto}' in text
        assert ('auto (default): OpenVINO when it is installed' in text) == (command not in ('index', 'search'))


def test_classify_table_with_templates(capsys, readable, predictor, tiny_checkpoint):
    templates = ['{}', 'фото, на котором {}']
    code, out, err = run(capsys, 'classify', *readable[:2], '--labels', *LABELS, '--templates', *templates,
                         '--model', tiny_checkpoint, '-q', *TORCH_FP32)
    assert code == 0 and err == ''
    header, *rows = out.splitlines()
    assert header.split() == ['image', 'top', '1', 'top', '2', 'top', '3']
    with_templates = ruclip.Predictor(predictor.clip_model, predictor.clip_processor, templates=templates, quiet=True)
    expected = ruclip.classify(with_templates, readable[:2], LABELS, k=3)
    for row, file, labels, scores in zip(rows, readable, expected.labels, expected.scores):
        assert row.split() == [file] + [cell for label, score in zip(labels, scores.tolist())
                                        for cell in (label, f'{score:.3f}')]


def test_rank_json_agrees_with_the_similarity_matrix(capsys, tmp_path, photos, readable, predictor, tiny_checkpoint):
    texts = tmp_path / 'captions.txt'
    texts.write_text('\n'.join(CAPTIONS[:2]) + '\n\n  ' + CAPTIONS[2] + '  \n', encoding='utf-8')
    code, out, _ = run(capsys, 'rank', '--images', photos, '--texts', texts, '--top-k', 2, '--json',
                       '--model', tiny_checkpoint, '-q', *TORCH_FP32)
    assert code == 1
    result = json.loads(out)
    assert result['texts'] == CAPTIONS and result['files'] == readable
    matrix = ruclip.similarity(predictor.get_image_latents(readable), ruclip.encode_texts(predictor, CAPTIONS))
    for i, entry in enumerate(result['texts_per_image']):
        best = matrix[i].argsort(descending=True)[:2].tolist()
        assert [e['index'] for e in entry['top']] == best
        assert [e['text'] for e in entry['top']] == [CAPTIONS[j] for j in best]
        np.testing.assert_allclose([e['score'] for e in entry['top']], matrix[i, best].numpy(), atol=1e-6)
    for j, entry in enumerate(result['images_per_text']):
        best = matrix[:, j].argsort(descending=True)[:2].tolist()
        assert entry['text'] == CAPTIONS[j]
        assert [e['file'] for e in entry['top']] == [readable[i] for i in best]


def test_rank_text_output_reads_captions_from_stdin(capsys, monkeypatch, readable, tiny_checkpoint):
    import io
    monkeypatch.setattr(sys, 'stdin', io.StringIO('\n'.join(CAPTIONS)))
    code, out, _ = run(capsys, 'rank', '--images', readable[0], '--texts', '-', '--model', tiny_checkpoint, '-q')
    assert code == 0
    assert out.startswith('# Captions for each image (cosine similarity)\n' + readable[0] + '\n   1. ')
    assert '# Images for each caption' in out and all(caption in out for caption in CAPTIONS)


@pytest.mark.parametrize('suffix', ['npz', 'npy'])
def test_embed_writes_get_image_latents_and_the_files(capsys, tmp_path, photos, readable, predictor,
                                                      tiny_checkpoint, suffix):
    out_file = tmp_path / f'latents.{suffix}'
    code, out, err = run(capsys, 'embed', photos, '--out', out_file, '--model', tiny_checkpoint, '--batch-size', 2,
                         *TORCH_FP32)
    assert code == 1
    assert 'broken.jpg' in err and 'skipped 1 of 6' in err and 'image/s' in err  # the progress bar
    assert out.startswith('wrote 5 image latents of 24 dimensions')
    if suffix == 'npz':
        saved = np.load(out_file)
        latents, files = saved['latents'], saved['files'].tolist()
        assert str(saved['model']) == str(tiny_checkpoint)
    else:
        latents = np.load(out_file)
        files = (tmp_path / 'latents.files.txt').read_text(encoding='utf-8').splitlines()
    assert files == readable and latents.dtype == np.float32
    # up to float rounding: the skipped file leaves its batch one image short
    np.testing.assert_allclose(latents, predictor.get_image_latents(readable).numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize('argv, message', [
    (['classify', 'no/such.jpg', '--labels', 'кошка'], 'no such image file or folder: no/such.jpg'),
    (['classify', '{photo}', '--labels', 'кошка', '--model', 'ruclip-vit-huge'], "Unknown model 'ruclip-vit-huge'"),
    (['classify', '{photo}', '--labels', 'кошка', '--model', './no/folder'], 'no such checkpoint folder'),
    (['classify', '{broken}', '--labels', 'кошка'], 'none of the 1 image files could be read'),
    (['classify', '{photo}', '--labels', 'кошка', '--templates', 'без скобок'], 'needs a {} for the label'),
    (['classify', '{photo}', '--labels', 'кошка', ' '], '--labels must not be empty'),
    (['rank', '--images', '{photo}', '--texts', 'no/such.txt'], '--texts: no such file'),
    (['rank', '--images', '{photo}', '--texts', '{empty}'], 'has no captions'),
    (['rank', '--images', '{photo}', '--texts', '{folder}'], 'is a folder, expected a text file'),
    (['embed', '{photo}', '--out', 'latents.csv'], '--out must end in .npy or .npz'),
    (['embed', '{photo}', '--out', 'no/such/folder/x.npz'], '--out: no such folder'),
    (['embed', '{photo}', '--out', '{folder}'], 'is a folder, expected a file name'),
    (['embed', '{photo}', '--out', '/proc/x.npz'], '--out: cannot write into /proc'),
    (['embed', '{photo}', '--out', '/proc/x.npy'], '--out: cannot write into /proc'),
    (['models', '--model', 'ruclip-vit-huge'], "Unknown model 'ruclip-vit-huge'"),
])
def test_bad_input_exits_2_with_a_clear_error(capsys, tmp_path, photos, tiny_checkpoint, argv, message):
    (tmp_path / 'empty.txt').write_text('\n  \n')
    (tmp_path / 'folder.npz').mkdir()
    paths = dict(photo=photos / 'a.png', broken=photos / 'broken.jpg', empty=tmp_path / 'empty.txt',
                 folder=tmp_path / 'folder.npz')
    argv = [arg.format(**paths) for arg in argv]
    if '--model' not in argv and argv[0] != 'models':
        argv += ['--model', str(tiny_checkpoint)]
    code, out, err = run(capsys, *argv, *(['-q'] if argv[0] != 'models' else []))
    assert code == 2 and out == ''
    assert err.splitlines()[-1].startswith(f'ruclip {argv[0]}: error: ') and message in err


@pytest.mark.parametrize('argv', [[], ['classify', 'a.jpg'], ['classify', 'a.jpg', '--labels', 'x', '--top-k', '0'],
                                  ['embed', 'a.jpg', '--out', 'x.npz', '--device', 'gpu'], ['frobnicate'],
                                  ['models', '--device', 'cpu'], ['models', '--batch-size', '2'], ['models', '-q']])
def test_usage_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert 'usage: ruclip' in capsys.readouterr().err


def test_a_non_ascii_digit_is_named_in_the_top_k_error(capsys):
    with pytest.raises(SystemExit):
        main(['classify', 'a.jpg', '--labels', 'x', '--top-k', '²'])
    assert "--top-k: expected a positive integer, got '²'" in capsys.readouterr().err


def test_help_lists_only_the_exit_codes_a_command_returns(capsys):
    for command, skips in (('classify', True), ('embed', True), ('models', False), ('export-onnx', False)):
        with pytest.raises(SystemExit):
            main([command, '--help'])
        codes = [line.split()[0] for line in capsys.readouterr().out.split('exit codes:')[1].splitlines()
                 if line[:3].strip().isdigit()]
        assert codes == (['0', '1'] if skips else ['0']) + ['2', '3', '130', '141']


def ruclip_process(*argv, **environment):
    return subprocess.Popen([sys.executable, '-m', 'ruclip', *map(str, argv)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, **environment})


def test_a_closed_stdout_ends_the_command_quietly(tmp_path, photos, tiny_checkpoint, default_model):
    """`ruclip ... | head -1`: the reader is gone before the results come; no 'failed', exit code 141."""
    process = ruclip_process('classify', photos / 'a.png', '--labels', *LABELS, '--model', tiny_checkpoint, '-q',
                             '--json')
    process.stdout.close()  # before the process has written anything: it imports for a second first
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and err == ''


def test_json_is_utf8_whatever_the_locale_and_an_unencodable_table_is_no_usage_error(photos, tiny_checkpoint,
                                                                                    default_model):
    argv = ['classify', photos / 'a.png', '--labels', *LABELS, '--model', tiny_checkpoint, '-q']
    process = ruclip_process(*argv, '--json', PYTHONIOENCODING='cp1251')
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert json.loads(out.decode('utf-8'))['labels'] == LABELS
    process = ruclip_process(*argv, PYTHONIOENCODING='cp1252')
    _, err = process.communicate(timeout=120)
    assert process.returncode == 3
    assert 'ruclip classify: failed: stdout (charmap) cannot show the results' in err.decode()
    assert 'PYTHONIOENCODING=utf-8' in err.decode()


def test_json_keeps_file_names_that_are_not_utf8(tmp_path, photos, tiny_checkpoint, default_model):
    """A cp1251 file name (Windows archives) under the C.UTF-8 locale of containers: its bytes come back as they were."""
    folder = tmp_path / 'cp1251'
    folder.mkdir()
    name = 'кот.png'.encode('cp1251')
    with open(os.fsencode(folder) + b'/' + name, 'wb') as file:
        file.write((photos / 'a.png').read_bytes())
    environment = {k: v for k, v in os.environ.items() if k not in ('PYTHONIOENCODING', 'LC_ALL', 'LANG')}
    process = subprocess.Popen([sys.executable, '-m', 'ruclip', 'classify', str(folder), '--labels', *LABELS,
                                '--model', str(tiny_checkpoint), '-q', '--json'], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env={**environment, 'LC_ALL': 'C.UTF-8'})
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert os.fsencode(folder) + b'/' + name in out
    assert json.loads(out.decode('utf-8', errors='surrogateescape'))['labels'] == LABELS


def test_json_goes_to_a_text_only_stdout(monkeypatch, capsys):
    import io
    stream = io.StringIO()
    monkeypatch.setattr(sys, 'stdout', stream)
    assert main(['models', '--json']) == 0
    assert len(json.loads(stream.getvalue())) == len(ruclip.MODELS)


def test_python_dash_m_ruclip_runs_the_command(tmp_path, photos, tiny_checkpoint, default_model):
    """The real entry point, in a fresh process: stdout is the JSON, warnings and the exit code as documented."""
    result = subprocess.run(
        [sys.executable, '-m', 'ruclip', 'classify', photos / 'a.png', photos / 'broken.jpg', '--labels', *LABELS,
         '--model', tiny_checkpoint, '--json', '-q'],
        cwd=REPO, capture_output=True, text=True, encoding='utf-8', timeout=120)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)['results'][0]['file'] == str(photos / 'a.png')
    assert 'broken.jpg' in result.stderr and 'skipped 1 of 2' in result.stderr
    help_ = subprocess.run([sys.executable, '-m', 'ruclip', '--help'], cwd=REPO, capture_output=True, text=True,
                           timeout=120)
    assert help_.returncode == 0
    assert all(name in help_.stdout for name in ('models', 'classify', 'rank', 'embed', 'exit codes'))


def test_a_corrupt_checkpoint_is_bad_input_and_other_failures_exit_3(capsys, monkeypatch, tmp_path, photos,
                                                                     tiny_checkpoint):
    corrupt = tmp_path / 'corrupt'
    corrupt.mkdir()
    for name in ('config.json', 'bpe.model'):
        (corrupt / name).write_bytes((tiny_checkpoint / name).read_bytes())
    (corrupt / 'pytorch_model.bin').write_bytes(b'not a checkpoint')
    code, out, err = run(capsys, 'embed', photos / 'a.png', '--out', tmp_path / 'x.npy', '--model', corrupt, '-q')
    assert code == 2 and 'pytorch_model.bin' in err

    def out_of_memory(*args, **kwargs):
        raise RuntimeError('CUDA out of memory')

    monkeypatch.setattr('ruclip.pretrained.load', out_of_memory)
    code, out, err = run(capsys, 'embed', photos / 'a.png', '--out', tmp_path / 'x.npy', '--model', corrupt, '-q')
    assert code == 3 and out == '' and err == 'ruclip embed: failed: RuntimeError: CUDA out of memory\n'
