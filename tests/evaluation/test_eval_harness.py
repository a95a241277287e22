"""The evaluations end to end on a tiny checkpoint trained to tell four colours apart by their Russian
names: zero-shot, linear probe, retrieval, the feature cache, result files, the report, the picture,
the command line, and CLIP_benchmark's own zero-shot code run on the same data through our loader."""
import json
import warnings

import numpy as np
import pytest
import torch

import ruclip
from helpers.checkpoints import write_checkpoint
from helpers.eval_data import CLASSNAMES, COLOURS, SMALL_ARCHITECTURE, colour_image, train_colour_checkpoint, \
    write_image_folder
from ruclip.cli import main
from ruclip.evaluation import features, harness, load_split, read_results, report_table, write_result
from ruclip.evaluation.classifier import zero_shot_weights

pytest.importorskip('sklearn')
TEMPLATES = ['фото: {}.', 'на фото {}.', '{} на фотографии.']  # two of them unseen in training


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory, bpe_model):
    """(untrained, trained) checkpoint folders; the trained one is named as a published model, for the report."""
    base = write_checkpoint(tmp_path_factory.mktemp('untrained') / 'ruclip-untrained', SMALL_ARCHITECTURE, bpe_model)
    trained = train_colour_checkpoint(base, tmp_path_factory.mktemp('trained') / 'ruclip-vit-base-patch32-224')
    return base, trained


@pytest.fixture(scope='module')
def colours(tmp_path_factory):
    """An image folder with test/ (6 of each colour) and train/ (8 of each) splits."""
    root = tmp_path_factory.mktemp('colours')
    write_image_folder(root / 'test', 6, seed=100)
    write_image_folder(root / 'train', 8, seed=500)
    return root


def predictor(folder):
    clip, processor = ruclip.load(str(folder))
    return ruclip.Predictor(clip, processor, quiet=True, num_workers=0)


def test_zeroshot_is_far_above_chance_only_when_trained(checkpoints, colours):
    split = load_split('imagefolder', colours, 'test', templates=TEMPLATES)
    assert split.classnames == CLASSNAMES[:0] + sorted(CLASSNAMES)  # folders in sorted order
    untrained, trained = (harness.evaluate_zeroshot(predictor(f), split, model=str(f)) for f in checkpoints)
    assert trained['metrics']['acc1'] >= 0.9 and trained['metrics']['mean_per_class_recall'] >= 0.9
    assert untrained['metrics']['acc1'] <= 0.5  # chance is 0.25: the numbers come from the model
    assert trained['metrics']['acc5'] is None  # 4 classes
    assert trained['task'] == 'zeroshot_classification' and trained['language'] == 'ru'
    assert np.array(trained['confusion_matrix']).sum() == 24 and len(trained['per_class_recall']) == 4


def test_clip_and_predictor_orders_are_close_but_not_equal(checkpoints):
    tool = predictor(checkpoints[1])
    clip_order = zero_shot_weights(tool, CLASSNAMES, TEMPLATES)
    predictor_order = zero_shot_weights(tool, CLASSNAMES, TEMPLATES, order='predictor')
    tool.templates = TEMPLATES
    assert torch.allclose(predictor_order, tool.get_text_latents(CLASSNAMES).cpu(), atol=1e-6)
    cosine = (clip_order * predictor_order).sum(1)
    assert (cosine > 0.9).all() and not torch.allclose(clip_order, predictor_order, atol=1e-6)
    assert torch.allclose(clip_order.norm(dim=1), torch.ones(4), atol=1e-5)
    with pytest.raises(ValueError, match="order must be one of"):
        zero_shot_weights(tool, CLASSNAMES, TEMPLATES, order='mean')


def test_linear_probe_both_protocols(checkpoints, colours):
    tool = predictor(checkpoints[0])  # even random towers' latents keep colour linearly readable
    train, test = (load_split('imagefolder', colours, s) for s in ('train', 'test'))
    for protocol in ('clip', 'simple'):
        record = harness.evaluate_linear_probe(tool, train, test, model='untrained', protocol=protocol)
        assert record['metrics']['acc1'] >= 0.9, protocol
        assert record['task'] == 'linear_probe' and record['n_train'] == 32
    assert record['C'] == 1.0 and record['sweep'] == []


def test_retrieval_both_ways(checkpoints, tmp_path):
    rows = []
    for label, (_, word) in enumerate(COLOURS):
        colour_image(label, 900 + label).save(tmp_path / f'{label}.png')
        rows += [{'image': f'{label}.png', 'caption': [f'фото: {word}.', f'на фото {word}.']}]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    (tmp_path / 'captions.jsonl').write_text('\n'.join(lines), encoding='utf-8')
    split = load_split('jsonl', tmp_path / 'captions.jsonl')
    trained, untrained = (harness.evaluate_retrieval(predictor(f), split)['metrics'] for f in checkpoints[::-1])
    assert trained['image_retrieval_recall@1'] >= 0.75 and trained['text_retrieval_recall@1'] >= 0.75
    assert untrained['image_retrieval_recall@1'] <= 0.5  # chance: 0.25
    assert trained['image_retrieval_recall@10'] == 1.0  # k over the 4 images: all of them


def test_feature_cache_is_reused_and_keyed_by_model(checkpoints, colours, tmp_path, monkeypatch):
    split = load_split('imagefolder', colours, 'test')
    trained = predictor(checkpoints[1])
    first = features.image_features(trained, split, tmp_path)
    assert len(list(tmp_path.glob('*.npz'))) == 1
    monkeypatch.setattr(trained, 'get_image_latents', lambda *a, **k: pytest.fail('latents recomputed'))
    assert torch.equal(features.image_features(trained, split, tmp_path), first)
    other = predictor(checkpoints[0])
    assert features.cache_key(other, split) != features.cache_key(trained, split)
    features.image_features(other, split, tmp_path)
    assert len(list(tmp_path.glob('*.npz'))) == 2


def test_feature_cache_keys_tell_backends_precisions_and_weights_apart(checkpoints, colours):
    split = load_split('imagefolder', colours, 'test')

    def key(folder, **options):
        with warnings.catch_warnings():  # int8 of this checkpoint may miss its gate: asked for all the same
            warnings.simplefilter('ignore', RuntimeWarning)
            clip, processor = ruclip.load(folder, **options)
        return features.cache_key(ruclip.Predictor(clip, processor, quiet=True), split)

    keys = [key(checkpoints[1]), key(checkpoints[1], backend='openvino', dtype='fp32'),
            key(checkpoints[1], backend='openvino', dtype='int8'), key(checkpoints[0], backend='openvino', dtype='fp32')]
    assert len(set(keys)) == 4 and key(checkpoints[1], backend='openvino', dtype='fp32') == keys[1]


def test_text_tower_alone(checkpoints):
    tool = predictor(checkpoints[1])
    sentences = ['Мама мыла раму.', 'Кот спит на диване', 'мама мыла раму.']
    latents = harness.text_embeddings(tool, sentences)
    assert latents.shape == (3, 24) and torch.allclose(latents.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(latents[0], harness.text_embeddings(tool, sentences[:1])[0], atol=1e-5)


def test_cli_zeroshot_json_plot_and_report(checkpoints, colours, tmp_path, capsys):
    pytest.importorskip('matplotlib')
    templates = tmp_path / 'templates.txt'
    templates.write_text('\n'.join(TEMPLATES) + '\n', encoding='utf-8')
    out, picture = tmp_path / 'colours.json', tmp_path / 'confusion.png'
    common = ['--model', str(checkpoints[1]), '--device', 'cpu', '-q', '--feature-cache', str(tmp_path / 'cache')]
    code = main(['eval', 'zeroshot', '--dataset', 'imagefolder', '--root', str(colours), '--split', 'test',
                 '--templates', str(templates), '--out', str(out), '--plot', str(picture)] + common)
    assert code == 0
    record = json.loads(out.read_text(encoding='utf-8'))
    assert {'dataset', 'model', 'task', 'metrics', 'language'} <= set(record) and record['metrics']['acc1'] >= 0.9
    ran = ruclip.load(checkpoints[1], backend='auto', dtype='auto')[0]  # what the defaults run here
    assert record['runtime'] == dict(backend=ran.backend, dtype=ran.precision)
    printed = capsys.readouterr().out
    assert picture.stat().st_size > 1000 and 'acc1' in printed and f'({ran.backend} {ran.precision})' in printed
    # a webdataset copy of CIFAR-10's name: the report puts the README's figure beside ours
    wds = tmp_path / 'wds'
    write_wds_colours(wds)
    cifar = tmp_path / 'cifar.json'
    assert main(['eval', 'zeroshot', '--dataset', 'wds/cifar10', '--root', str(wds), '--out', str(cifar)] + common) == 0
    probe = tmp_path / 'probe.json'
    assert main(['eval', 'linear-probe', '--dataset', 'imagefolder', '--root', str(colours), '--split', 'test',
                 '--train-split', 'train', '--protocol', 'simple', '--out', str(probe)] + common) == 0
    capsys.readouterr()
    assert main(['eval', 'report', str(out), str(cifar), str(probe)]) == 0
    table = capsys.readouterr().out
    assert '| Dataset (zero-shot) | ruclip-vit-base-patch32-224 |' in table
    assert f"| wds/cifar10, acc1 | {json.loads(cifar.read_text())['metrics']['acc1']:.3f} (0.818) |" in table
    assert '| Dataset (linear probe) |' in table and 'imagefolder, acc1' in table


def write_wds_colours(root):
    import io
    import tarfile
    (root / 'test').mkdir(parents=True)
    (root / 'test' / 'nshards.txt').write_text('1')
    with tarfile.open(root / 'test' / '0.tar', 'w') as archive:
        for k in range(8):
            buffer = io.BytesIO()
            colour_image(k % 4, 300 + k).save(buffer, format='PNG')
            for name, data in ((f'{k:04d}.png', buffer.getvalue()), (f'{k:04d}.cls', str(k % 4).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    (root / 'classnames.txt').write_text('\n'.join(CLASSNAMES) + '\n', encoding='utf-8')
    (root / 'zeroshot_classification_templates.txt').write_text('\n'.join(t.replace('{}', '{c}') for t in TEMPLATES))


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(['eval', 'zeroshot', '--dataset', 'cifar11', '--root', str(tmp_path), '--no-cache']) == 2
    assert "unknown dataset 'cifar11'" in capsys.readouterr().err
    (tmp_path / 'x.json').write_text('{"dataset": "a"}')
    assert main(['eval', 'report', str(tmp_path / 'x.json')]) == 2
    assert 'not a result file' in capsys.readouterr().err


def test_clip_benchmark_gives_our_numbers(checkpoints, colours):
    """CLIP_benchmark's own zero-shot code (classifier, then logits over a DataLoader of our transform's
    tensors), with our loader, on the same images: the same weights, logits and metrics as our harness.

    (Its evaluate() itself cannot run under numpy 2.4: its accuracy() calls float() on a 1-element
    array; so the metrics are computed from its logits as evaluate() does after that call.)"""
    zeroshot = pytest.importorskip('clip_benchmark.metrics.zeroshot_classification')
    datasets = pytest.importorskip('torchvision.datasets')
    from sklearn.metrics import balanced_accuracy_score

    from ruclip.evaluation.clip_benchmark import MODEL_TYPE, load_ruclip, register
    model, transform, tokenizer = load_ruclip(str(checkpoints[1]), device='cpu')
    folder = datasets.ImageFolder(str(colours / 'test'), transform=transform)
    loader = torch.utils.data.DataLoader(folder, batch_size=5)
    cb_templates = [t.replace('{}', '{c}') for t in TEMPLATES]
    weights = zeroshot.zero_shot_classifier(model, tokenizer, folder.classes, cb_templates, 'cpu', amp=False)
    logits, target = zeroshot.run_classification(model, weights, loader, 'cpu', amp=False)
    tool = predictor(checkpoints[1])
    split = load_split('imagefolder', colours, 'test', templates=TEMPLATES)
    assert split.labels == target.tolist()
    ours = zero_shot_weights(tool, split.classnames, TEMPLATES)
    assert torch.allclose(weights.T, ours, atol=1e-5)
    our_logits = 100 * features.image_features(tool, split) @ ours.T
    assert torch.allclose(logits, our_logits, atol=1e-3)
    record = harness.evaluate_zeroshot(tool, split)['metrics']
    assert (logits.argmax(1) == target).float().mean().item() == pytest.approx(record['acc1'])
    assert balanced_accuracy_score(target, logits.argmax(1)) == pytest.approx(record['mean_per_class_recall'])
    assert record['acc1'] >= 0.9
    pytest.importorskip('open_clip')  # clip_benchmark.models imports it
    register()
    from clip_benchmark.models import MODEL_TYPES, load_clip
    assert MODEL_TYPE in MODEL_TYPES
    assert load_clip('ruclip', str(checkpoints[1]), None, None, 'cpu')[0].config.image_resolution == 64


def test_clip_benchmark_retrieval_gives_our_numbers(checkpoints, tmp_path):
    retrieval = pytest.importorskip('clip_benchmark.metrics.zeroshot_retrieval')
    from ruclip.evaluation.clip_benchmark import load_ruclip
    rows = []
    for k in range(6):
        colour_image(k % 4, 700 + k).save(tmp_path / f'{k}.png')
        word = COLOURS[k % 4][1]
        # every caption text unique: two equal texts tie exactly, and the two harnesses break ties by
        # float rounding that depends on the batch and the CPU's kernels
        rows.append({'image': f'{k}.png', 'caption': [f'фото {k}: {word}.', f'{word} на фотографии {k}.'][:1 + k % 2]})
    (tmp_path / 'c.jsonl').write_text('\n'.join(json.dumps(r, ensure_ascii=False) for r in rows), encoding='utf-8')
    split = load_split('jsonl', tmp_path / 'c.jsonl')
    model, transform, tokenizer = load_ruclip(str(checkpoints[1]), device='cpu')
    from PIL import Image
    batches = [(torch.stack([transform(Image.open(split.images[i])) for i in range(s, min(s + 4, 6))]),
                split.captions[s:s + 4]) for s in (0, 4)]
    theirs = retrieval.evaluate(model, batches, tokenizer, 'cpu', amp=False, recall_k_list=[1, 2, 5])
    ours = harness.evaluate_retrieval(predictor(checkpoints[1]), split, ks=(1, 2, 5))['metrics']
    assert ours == pytest.approx(theirs)


def test_results_files_and_report_without_published_figures(tmp_path):
    record = dict(dataset='imagefolder', model='/x/my-model', task='zeroshot_classification', split='test',
                  metrics={'acc1': 0.5, 'acc5': float('nan'), 'mean_per_class_recall': 0.25}, language='ru',
                  main_metric='mean_per_class_recall')
    write_result(record, tmp_path / 'r.json')
    assert json.loads((tmp_path / 'r.json').read_text())['metrics']['acc5'] is None
    table = report_table(read_results([tmp_path / 'r.json']))
    assert '| imagefolder, mean_per_class_recall | 0.250 |' in table
    with pytest.raises(ValueError, match='no result files'):
        read_results([])


def test_feature_cache_sees_a_replaced_image(checkpoints, tmp_path):
    write_image_folder(tmp_path / 'data', 2)
    tool = predictor(checkpoints[1])
    before = features.cache_key(tool, load_split('imagefolder', tmp_path / 'data'))
    colour_image(3, 77).save(tmp_path / 'data' / CLASSNAMES[0] / '000.png')  # same name, other pixels
    after = features.cache_key(tool, load_split('imagefolder', tmp_path / 'data'))
    assert before != after
