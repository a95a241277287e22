"""`ruclip finetune`: a run from the command line, and each bad input's clear error (exit 2) before
any training, with nothing left behind."""
import json
import shutil

import pytest

from ruclip.cli import main

QUICK = ['--epochs', '1', '--batch-size', '24', '--lr', '1e-3', '--precision', 'fp32', '--unlocked-blocks', '0', '-q']


def finetune(capsys, checkpoint, *argv):
    code = main(['finetune', '--model', str(checkpoint), *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_run_from_the_command_line_reports_and_writes_a_checkpoint(capsys, shapes, tiny_checkpoint, tmp_path):
    code, out, err = finetune(capsys, tiny_checkpoint, '--train', shapes['train'], '--val', shapes['val'],
                              '--out', tmp_path / 'run', '--json', *QUICK)
    assert code == 0, err
    report = json.loads(out)
    assert report['steps'] == 5 and report['train_pairs'] == 120
    assert set(report['validation_after']) >= {'recall@1', 'zero_shot_acc1', 'image_retrieval_recall@5'}
    code, out, err = finetune(capsys, tmp_path / 'run', '--train', shapes['train'], '--out', tmp_path / 'again',
                              *QUICK)
    assert code == 0, err  # the output is a --model like any other
    assert 'fine-tuned 120 pairs for 5 steps' in out
    picture = next(shapes['val'].rglob('*.png'))
    assert main(['classify', str(picture), '--labels', 'красный круг', 'синий квадрат', '--model',
                 str(tmp_path / 'run'), '--backend', 'torch', '--json']) == 0
    assert json.loads(capsys.readouterr().out)['results'][0]['top']


def test_unreadable_images_are_skipped_and_named(capsys, shapes, tiny_checkpoint, tmp_path):
    table = shapes['train'].read_text(encoding='utf-8').splitlines()
    (tmp_path / 'images').symlink_to(shapes['train'].parent / 'images')
    (tmp_path / 'broken.png').write_bytes(b'not a picture')
    (tmp_path / 'pairs.csv').write_text('\n'.join(table + ['missing.png,синий круг', 'broken.png,синий круг']) + '\n',
                                        encoding='utf-8')
    code, out, err = finetune(capsys, tiny_checkpoint, '--train', tmp_path / 'pairs.csv', '--out', tmp_path / 'run',
                              *QUICK)
    assert code == 1
    assert 'missing.png' in err and 'broken.png' in err and 'skipped 2 rows' in err
    assert json.loads((tmp_path / 'run' / 'training_report.json').read_text())['train_pairs'] == 120


@pytest.mark.parametrize('table, message', [
    ('image_path,label\nimages/00_000.png,x\n', 'no caption column'),
    ('file,caption\nimages/00_000.png,x\n', 'has no column image_path'),
    ('image_path,caption\n', 'holds no rows'),
    ('image_path,caption\nnowhere/1.png,красный круг\nnowhere/2.png,синий круг\n',
     'none of the 2 images could be read'),
])
def test_bad_tables_are_refused_before_training(capsys, table, message, tiny_checkpoint, tmp_path):
    (tmp_path / 'pairs.csv').write_text(table, encoding='utf-8')
    code, out, err = finetune(capsys, tiny_checkpoint, '--train', tmp_path / 'pairs.csv', '--out', tmp_path / 'run',
                              *QUICK)
    assert code == 2
    assert message in err
    assert not (tmp_path / 'run').exists()


def test_out_never_replaces_a_checkpoint_an_input_or_another_folder(capsys, shapes, tiny_checkpoint, tmp_path):
    checkpoint = tmp_path / 'checkpoint'
    shutil.copytree(tiny_checkpoint, checkpoint)
    before = sorted(path.name for path in checkpoint.iterdir())
    cases = [(checkpoint, 'checkpoint folder'), (checkpoint / 'sub', 'inside the checkpoint folder'),
             (shapes['train'].parent, 'overlap')]
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'notes.txt').write_text('mine')
    cases.append((other, 'holds no ruclip training run'))
    for out, message in cases:
        code, _, err = finetune(capsys, checkpoint, '--train', shapes['train'], '--out', out, '--overwrite', *QUICK)
        assert code == 2 and message in err, (out, err)
    code, _, err = finetune(capsys, checkpoint, '--train', shapes['train_folder'], '--out',
                            shapes['train_folder'] / 'run', *QUICK)
    assert code == 2 and 'overlap' in err
    assert not (shapes['train_folder'] / 'run').exists()
    assert sorted(path.name for path in checkpoint.iterdir()) == before
    assert (other / 'notes.txt').read_text() == 'mine'


@pytest.mark.parametrize('argv, message', [
    (['--lock-image', '--lock-text'], 'not allowed with argument'),
    (['--keep-best'], 'keep_best ranks validations: give val'),
    (['--batch-size', '0'], 'expected a positive integer'),
    (['--wise-ft', '1.5'], 'wise_ft must be a number in'),
    (['--templates', 'без места'], 'templates are for a folder of classes'),
])
def test_bad_options_are_refused(capsys, argv, message, shapes, tiny_checkpoint, tmp_path):
    with pytest.raises(SystemExit) if message == 'not allowed with argument' or 'positive' in message else \
            _no_exit():
        code, _, err = finetune(capsys, tiny_checkpoint, '--train', shapes['train'], '--out', tmp_path / 'run',
                                *argv)
        assert code == 2 and message in err, err
    assert not (tmp_path / 'run').exists()


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_webdataset_tars_train_like_tables(capsys, shapes, tiny_checkpoint, tmp_path):
    import csv
    import tarfile

    rows = list(csv.DictReader(shapes['train'].open(encoding='utf-8')))
    with tarfile.open(tmp_path / 'shard-0.tar', 'w') as tar:
        for number, row in enumerate(rows[:48]):
            tar.add(shapes['train'].parent / row['image_path'], arcname=f'{number:04d}.png')
            caption = tmp_path / 'caption.txt'
            caption.write_text(row['caption'], encoding='utf-8')
            tar.add(caption, arcname=f'{number:04d}.txt')
        tar.add(caption, arcname='lonely.txt')  # a sample without its image: skipped and named
    code, out, err = finetune(capsys, tiny_checkpoint, '--train', tmp_path / 'shard-0.tar', '--out', tmp_path / 'run',
                              '--json', *QUICK)
    assert code == 1 and 'lonely' in err
    report = json.loads(out)
    assert report['train_pairs'] == 48 and report['steps'] == 2
