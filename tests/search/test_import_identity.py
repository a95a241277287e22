"""Imported latents meet the index's model identity check: `ruclip embed` records which model made
them (.npz array, .npy sidecar, shards' manifest); latents of another checkpoint of the same width are
refused naming both models; latents that record no model are taken only when the caller vouches."""
import importlib
import json

import numpy as np
import pytest

import ruclip
from helpers.library import predictor_for, write_library
from ruclip.cli import main

TORCH_FP32 = ['--backend', 'torch', '--dtype', 'fp32']  # what predictor_for loads


@pytest.fixture(scope='module')
def library(tmp_path_factory, tiny_checkpoint):
    """(folder of 6 images, {'npz', 'npy', 'shards'}: `ruclip embed` outputs of tiny_checkpoint)."""
    root = tmp_path_factory.mktemp('embedded')
    write_library(root / 'lib', 6)
    outputs = dict(npz=root / 'lib.npz', npy=root / 'lib.npy', shards=root / 'shards')
    for kind, out in outputs.items():
        exact = ['--exact-decode'] if kind == 'shards' else []  # as predictor_for decodes (shards default to draft)
        assert main(['embed', str(root / 'lib'), '--out', str(out), '--model', str(tiny_checkpoint), '-q',
                     *TORCH_FP32, *exact]) == 0
    return root / 'lib', outputs


def imported(index, kind, source, **options):
    if kind == 'shards':
        return index.import_clip_retrieval(source, **options)
    return index.import_embeddings(source, **options)


@pytest.mark.parametrize('kind', ['npz', 'npy', 'shards'])
def test_latents_of_another_checkpoint_of_the_same_width_are_refused_naming_both(library, kind, tmp_path,
                                                                                  tiny_checkpoint, checkpoint_factory):
    if kind == 'shards':
        importlib.import_module('pyarrow')
    _, outputs = library
    other = predictor_for(checkpoint_factory(seed=1))
    assert other.identity.embed_dim == predictor_for(tiny_checkpoint).identity.embed_dim
    index = ruclip.ImageIndex(tmp_path / 'other.index', other)
    for options in ({}, dict(trust_model=True)):  # vouching does not override what a file records
        with pytest.raises(ValueError, match='holds latents of the model') as error:
            imported(index, kind, outputs[kind], **options)
        message = str(error.value)
        assert str(outputs[kind]) in message and other.identity.fingerprint[:12] in message
        assert f'fingerprint {predictor_for(tiny_checkpoint).identity.fingerprint[:12]}' in message
    assert len(index) == 0
    ours = ruclip.ImageIndex(tmp_path / 'ours.index', predictor_for(tiny_checkpoint))
    assert imported(ours, kind, outputs[kind]) == 6


def test_the_command_line_refuses_them_with_exit_2(library, tmp_path, checkpoint_factory, capsys):
    _, outputs = library
    code = main(['index', '--from-embeddings', str(outputs['npz']), '--index', str(tmp_path / 'x.index'),
                 '--model', str(checkpoint_factory(seed=1)), '-q', *TORCH_FP32])
    err = capsys.readouterr().err
    assert code == 2 and 'holds latents of the model' in err and str(outputs['npz']) in err


def test_latents_that_record_no_model_need_the_user_to_vouch(library, tmp_path, tiny_checkpoint, capsys):
    importlib.import_module('pyarrow')
    folder, outputs = library
    latents = np.load(outputs['npy'])
    np.save(tmp_path / 'old.npy', latents)  # an earlier ruclip's output: no .model.json
    (tmp_path / 'old.files.txt').write_text(outputs['npy'].with_suffix('.files.txt').read_text())
    clip_retrieval = tmp_path / 'cr'  # clip-retrieval's own output: no _manifest.json
    clip_retrieval.mkdir()
    for name in ('img_emb', 'metadata'):
        (clip_retrieval / name).symlink_to(outputs['shards'] / name)
    predictor = predictor_for(tiny_checkpoint)
    for kind, source, missing in (('npy', tmp_path / 'old.npy', 'old.model.json'),
                                  ('shards', clip_retrieval, '_manifest.json')):
        index = ruclip.ImageIndex(tmp_path / f'{kind}.index', predictor)
        with pytest.raises(ValueError, match=f'does not record which model.*{missing}.*--assume-model'):
            imported(index, kind, source)
        assert imported(index, kind, source, trust_model=True) == 6
    index = tmp_path / 'cli.index'
    base = ['index', '--from-clip-retrieval', str(clip_retrieval), '--index', str(index), '--model',
            str(tiny_checkpoint), '-q', *TORCH_FP32]
    assert main(base) == 2 and '--assume-model' in capsys.readouterr().err
    assert main(base + ['--assume-model']) == 0 and len(ruclip.ImageIndex(index)) == 6


def test_embed_records_the_predictors_identity(library, tiny_checkpoint):
    _, outputs = library
    expected = predictor_for(tiny_checkpoint).identity.to_dict()
    with np.load(outputs['npz']) as archive:
        assert json.loads(str(archive['model_identity'])) == expected
    assert json.loads(outputs['npy'].with_suffix('.model.json').read_text()) == expected


def test_a_new_index_from_draft_decoded_shards_decodes_as_they_did(library, tmp_path, tiny_checkpoint):
    """`ruclip embed --out FOLDER` decodes JPEGs in draft mode by default; an index started from those shards
    takes that from their manifest (it refused them, as another model's, when it always decoded exactly)."""
    importlib.import_module('pyarrow')
    folder, _ = library
    shards, index = tmp_path / 'draft-shards', tmp_path / 'draft.index'
    model = ['--model', str(tiny_checkpoint), '-q', *TORCH_FP32]
    assert main(['embed', str(folder), '--out', str(shards), *model]) == 0
    assert json.loads((shards / '_manifest.json').read_text())['model_identity']['jpeg_draft'] is True
    assert main(['index', '--from-clip-retrieval', str(shards), '--index', str(index), *model]) == 0
    recorded = ruclip.ImageIndex(index).model
    assert recorded['jpeg_draft'] is True
    assert main(['index', str(folder), '--index', str(index), *model]) == 0  # the same model: nothing to refuse
    assert len(ruclip.ImageIndex(index)) == 6
