"""One model identity (ruclip.identity) and one way to embed images (Predictor.embed_images): what
every derived file records, and what every capability calls."""
import ast
import copy
import json
from pathlib import Path

import pytest
import torch

import ruclip
from helpers.images import encoded, rgb_image
from helpers.library import predictor_for, write_library
from ruclip.identity import ModelIdentity, check_same_model

RUCLIP = Path(ruclip.__file__).parent


def test_the_identity_is_stable_and_tells_models_apart(tiny_checkpoint, checkpoint_factory):
    identity = predictor_for(tiny_checkpoint).identity
    assert predictor_for(tiny_checkpoint).identity == identity  # another load, the same model
    assert identity.name == str(tiny_checkpoint) and (identity.backend, identity.dtype) == ('torch', 'float32')
    assert predictor_for(checkpoint_factory(seed=1)).identity != identity  # same config, other weights
    clip, processor = ruclip.load(str(tiny_checkpoint), dtype='bf16')
    assert ruclip.Predictor(clip, processor).identity.differences(identity) == 'dtype bfloat16 vs float32'
    assert ModelIdentity.from_dict(json.loads(json.dumps(identity.to_dict()))) == identity


def test_the_identity_covers_the_tokenizer(tiny_checkpoint):
    clip, processor = ruclip.load(str(tiny_checkpoint))
    other = copy.deepcopy(processor)
    other.tokenizer.merges[0], other.tokenizer.merges[1] = other.tokenizer.merges[1], other.tokenizer.merges[0]
    assert ruclip.Predictor(clip, other).identity != ruclip.Predictor(clip, processor).identity


def test_the_identity_covers_jpeg_draft_decoding(tiny_checkpoint):
    predictor = predictor_for(tiny_checkpoint)
    exact = predictor.identity
    predictor.jpeg_draft = True
    assert predictor.identity.jpeg_draft and predictor.identity != exact
    assert predictor.identity.differences(exact) == 'jpeg_draft True vs False'


def test_an_index_filled_with_draft_decoding_refuses_an_update_without_it(tmp_path, tiny_checkpoint):
    write_library(tmp_path / 'lib', 3)
    index = ruclip.ImageIndex(tmp_path / 'lib.index', predictor_for(tiny_checkpoint, jpeg_draft=True))
    index.update([tmp_path / 'lib'])
    write_library(tmp_path / 'lib', 5)  # two more
    with pytest.raises(ValueError, match='jpeg_draft True vs False'):
        ruclip.ImageIndex(index.path, predictor_for(tiny_checkpoint)).update([tmp_path / 'lib'])
    assert len(ruclip.ImageIndex(index.path)) == 3


def test_a_record_of_an_earlier_format_equals_no_model(tiny_checkpoint):
    identity = predictor_for(tiny_checkpoint).identity
    old = {k: v for k, v in identity.to_dict().items() if k not in ('format', 'jpeg_draft')}
    with pytest.raises(ValueError, match='recorded by an earlier ruclip'):
        check_same_model(old, identity, 'index x')


def test_embed_images_returns_latents_kept_and_failures(tmp_path, tiny_checkpoint):
    predictor = predictor_for(tiny_checkpoint)
    good = [tmp_path / f'{i}.png' for i in range(3)]
    for i, path in enumerate(good):
        rgb_image(20, 20, seed=i).save(path)
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not a picture')
    images = [str(good[0]), str(broken), encoded(rgb_image(20, 20, seed=9)), str(tmp_path / 'missing.png'),
              str(good[1]), str(good[2])]
    embedded = predictor.embed_images(images)
    assert embedded.kept == [0, 2, 4, 5]
    assert [(position, image) for position, image, _ in embedded.failures] == [(1, str(broken)),
                                                                               (3, str(tmp_path / 'missing.png'))]
    assert all(str(image) in reason for _, image, reason in embedded.failures)  # each reason names its file
    assert embedded.latents.dtype == torch.float32 and embedded.latents.device.type == 'cpu'
    expected = predictor.get_image_latents([images[i] for i in embedded.kept])
    torch.testing.assert_close(embedded.latents, expected, rtol=0, atol=1e-6)
    nothing = predictor.embed_images([str(broken)])  # never raises for unreadable images
    assert nothing.kept == [] and nothing.latents.shape == (0, expected.shape[1]) and len(nothing.failures) == 1


def test_templates_per_call_equal_a_predictor_made_with_them(tiny_checkpoint):
    clip, processor = ruclip.load(str(tiny_checkpoint))
    templates = ['рисунок {}', '{} крупным планом']
    per_call = ruclip.Predictor(clip, processor).get_text_latents(['кошка', 'собака'], templates=templates)
    made = ruclip.Predictor(clip, processor, templates=templates).get_text_latents(['кошка', 'собака'])
    torch.testing.assert_close(per_call, made, rtol=0, atol=0)
    with pytest.raises(ValueError, match='needs a'):
        ruclip.Predictor(clip, processor).get_text_latents(['кошка'], templates=['без места'])


def test_every_derived_file_records_the_predictors_identity(tmp_path, tiny_checkpoint):
    from ruclip.distributed.inputs import list_inputs
    from ruclip.distributed.local import run_local
    from ruclip.distributed.partition import Settings
    from ruclip.evaluation.datasets import EvalSplit
    from ruclip.evaluation.features import cache_key

    predictor = predictor_for(tiny_checkpoint)
    fingerprint = predictor.identity.fingerprint
    paths = write_library(tmp_path / 'lib', 3)
    index = ruclip.ImageIndex(tmp_path / 'lib.index', predictor)
    index.update([tmp_path / 'lib'])
    assert index.model['fingerprint'] == fingerprint
    run_local(list_inputs(paths), Settings(model=str(tiny_checkpoint), out=str(tmp_path / 'shards'),
                                           partition_count=1), predictor=predictor)
    manifest = json.loads((tmp_path / 'shards' / '_manifest.json').read_text())
    assert manifest['model_identity']['fingerprint'] == fingerprint
    split = EvalSplit(name='lib', split='test', images=paths, labels=[0, 1, 0], classnames=['a', 'b'],
                      templates=['{}'], source='test')
    predictor.jpeg_draft = True  # another identity, another cache entry
    assert cache_key(predictor, split) != cache_key(predictor_for(tiny_checkpoint), split)


def test_a_worker_with_another_model_is_refused(tmp_path, tiny_checkpoint, checkpoint_factory):
    from ruclip.distributed.inputs import list_inputs
    from ruclip.distributed.partition import Settings, embed_partition
    from ruclip.distributed.job import start

    paths = write_library(tmp_path / 'lib', 2)
    settings = start(list_inputs(paths), Settings(model=str(tiny_checkpoint), out=str(tmp_path / 'shards'),
                                                  partition_count=1), predictor=predictor_for(tiny_checkpoint))
    with pytest.raises(ValueError, match="is not the one the run's manifest"):
        embed_partition(0, list_inputs(paths), settings, predictor_for(checkpoint_factory(seed=1)))
    assert not (tmp_path / 'shards' / 'img_emb').exists() or not any((tmp_path / 'shards' / 'img_emb').iterdir())


def test_no_capability_copies_a_predictor():
    """Per-call settings are arguments: no copy.copy of a Predictor with an attribute changed."""
    copies = []
    for path in RUCLIP.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == 'copy' \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == 'copy':
                copies.append(f'{path.relative_to(RUCLIP)}:{node.lineno}')
    assert copies == []
