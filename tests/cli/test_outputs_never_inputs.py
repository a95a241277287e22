"""No command writes over one of its own inputs: each output is checked against every input, whatever
its kind (dataset files and the images they list, tables, earlier shards, embeddings, image files,
the checkpoint folder), once symlinks and hard links are resolved, before any work."""
import json
import os

import pytest

from helpers.images import rgb_image
from ruclip.cli import main

TORCH = ['--backend', 'torch', '--dtype', 'fp32', '-q']


@pytest.fixture
def dataset(tmp_path):
    """A CSV and a JSONL dataset over two images."""
    for i in range(2):
        rgb_image(24, 20, seed=i).save(tmp_path / f'{i}.png')
    (tmp_path / 'labels.csv').write_text('image,label\n0.png,кот\n1.png,собака\n', encoding='utf-8')
    (tmp_path / 'captions.jsonl').write_text('\n'.join(json.dumps(dict(image=f'{i}.png', caption=f'фото {i}'))
                                                       for i in range(2)), encoding='utf-8')
    return tmp_path


def contents(folder):
    return {os.path.relpath(os.path.join(root, name), folder): open(os.path.join(root, name), 'rb').read()
            for root, _, names in os.walk(folder) for name in names}


@pytest.mark.parametrize('task, dataset_name, root, option, output', [
    ('zeroshot', 'csv', 'labels.csv', '--out', 'labels.csv'),
    ('retrieval', 'jsonl', 'captions.jsonl', '--out', 'captions.jsonl'),
    ('zeroshot', 'csv', 'labels.csv', '--out', 'link-to-labels.csv'),  # the dataset through a symlink
    ('zeroshot', 'csv', 'labels.csv', '--plot', '1.png'),  # an image the dataset lists
    ('zeroshot', 'imagefolder', 'photos', '--out', 'photos/кот/0.png'),  # a file of a dataset folder
])
def test_eval_refuses_an_output_that_is_its_data(dataset, tiny_checkpoint, capsys, task, dataset_name, root, option,
                                                 output):
    os.symlink(dataset / 'labels.csv', dataset / 'link-to-labels.csv')
    (dataset / 'photos' / 'кот').mkdir(parents=True)
    os.link(dataset / '0.png', dataset / 'photos' / 'кот' / '0.png')
    before = contents(dataset)
    assert main(['eval', task, '--dataset', dataset_name, '--root', str(dataset / root), option,
                 str(dataset / output), '--model', str(tiny_checkpoint), '--no-cache', *TORCH]) == 2
    assert 'is one of the inputs' in capsys.readouterr().err
    assert contents(dataset) == before


def test_eval_out_and_plot_must_differ(dataset, tiny_checkpoint, capsys):
    assert main(['eval', 'zeroshot', '--dataset', 'csv', '--root', str(dataset / 'labels.csv'), '--out',
                 str(dataset / 'r'), '--plot', str(dataset / 'r'), '--model', str(tiny_checkpoint), *TORCH]) == 2
    assert 'name the same file' in capsys.readouterr().err


def test_embed_refuses_to_write_over_the_table_it_reads(dataset, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / 'shards'
    assert main(['embed', str(dataset / '0.png'), str(dataset / '1.png'), '--out', str(out), '--partitions', '1',
                 '--model', str(tiny_checkpoint), *TORCH]) == 0
    before = contents(out)
    table = out / 'metadata' / 'metadata_0.parquet'  # a table of image paths: an input like any other
    assert main(['embed', str(table), '--out', str(out), '--overwrite', '--model', str(tiny_checkpoint),
                 *TORCH]) == 2
    assert f'{out / "metadata"} holds {table}, one of the inputs' in capsys.readouterr().err
    assert contents(out) == before


def test_embed_refuses_a_file_inside_the_checkpoint_folder(dataset, tiny_checkpoint, capsys):
    out = tiny_checkpoint / 'latents.npz'
    assert main(['embed', str(dataset / '0.png'), '--out', str(out), '--model', str(tiny_checkpoint), *TORCH]) == 2
    assert 'is inside the checkpoint folder of the model' in capsys.readouterr().err
    assert not out.exists()


def test_index_refuses_an_index_path_that_is_an_input(dataset, tiny_checkpoint, tmp_path, capsys):
    embeddings = tmp_path / 'latents.npz'
    assert main(['embed', str(dataset / '0.png'), '--out', str(embeddings), '--model', str(tiny_checkpoint),
                 *TORCH]) == 0
    before = embeddings.read_bytes()
    for arguments in (['--from-embeddings', str(embeddings), '--index', str(embeddings)],
                      [str(dataset / '0.png'), '--index', str(dataset / '0.png')],
                      [str(dataset), '--index', str(dataset)]):
        capsys.readouterr()
        assert main(['index', *arguments, '--model', str(tiny_checkpoint), *TORCH]) == 2
        assert 'one of the inputs' in capsys.readouterr().err
    assert embeddings.read_bytes() == before
