"""Peers in the same harness: a transformers CLIPModel and an open_clip model, built tiny and random
here, evaluate through the same `ruclip eval` command as RuCLIP, each with its own tokenizer and
preprocessing and its own identity in the feature cache."""
import json
import os

import pytest
import torch

from benchmark_layouts import write_xtd10
from helpers.checkpoints import write_checkpoint
from helpers.eval_data import CLASSNAMES, SMALL_ARCHITECTURE, train_colour_checkpoint, write_image_folder
from ruclip.cli import main
from ruclip.evaluation import models

pytest.importorskip('transformers')
open_clip = pytest.importorskip('open_clip')
TINY_OPEN_CLIP = {'embed_dim': 16,
                  'vision_cfg': {'image_size': 32, 'layers': 1, 'width': 32, 'head_width': 16, 'patch_size': 16},
                  'text_cfg': {'context_length': 16, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 1}}
COMMON = ['--device', 'cpu', '--backend', 'torch', '-q', '--json']


@pytest.fixture(scope='module')
def trained(tmp_path_factory, bpe_model):
    """(RuCLIP checkpoint trained on the colour words, the same exported as a transformers CLIPModel folder)."""
    from ruclip.export.hf import export_hf
    base = write_checkpoint(tmp_path_factory.mktemp('base') / 'ruclip-untrained', SMALL_ARCHITECTURE, bpe_model)
    folder = train_colour_checkpoint(base, tmp_path_factory.mktemp('trained') / 'ruclip-colours')
    exported = tmp_path_factory.mktemp('hf') / 'colours-clipmodel'
    export_hf(folder, exported)
    return folder, exported


@pytest.fixture(scope='module')
def tiny_open_clip(tmp_path_factory):
    """An open_clip model config file and seeded random weights for it."""
    folder = tmp_path_factory.mktemp('open_clip')
    config = folder / 'tiny-test-clip.json'
    config.write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(str(config))
    torch.manual_seed(0)
    weights = folder / 'weights.pt'
    torch.save(open_clip.create_model('tiny-test-clip').state_dict(), weights)
    return config, weights


def run(capsys, *args) -> dict:
    assert main(['eval', *args, *COMMON]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_transformers_export_of_ruclip_scores_as_ruclip_itself(trained, tmp_path, capsys):
    """The same network through transformers' CLIPModel, CLIPTokenizerFast and CLIPImageProcessor
    (square images: the same pixels) gives RuCLIP's recall, so the peer path adds nothing of its own."""
    ruclip_folder, hf_folder = trained
    root = write_xtd10(tmp_path / 'xtd10')
    captions = ''.join(f'на фото {word}.\n' for word in CLASSNAMES)
    (root / 'test_1kcaptions_ru.txt').write_text(captions, encoding='utf-8')
    cache = str(tmp_path / 'cache')
    ours = run(capsys, 'retrieval', '--dataset', 'xtd10', '--root', str(root), '--model', str(ruclip_folder),
               '--feature-cache', cache)
    peer = run(capsys, 'retrieval', '--dataset', 'xtd10', '--root', str(root), '--model', str(hf_folder),
               '--feature-cache', cache)
    assert peer['runtime'] == {'backend': 'torch', 'dtype': 'float32', 'family': 'transformers'}
    assert peer['metrics'] == pytest.approx(ours['metrics'])
    assert ours['metrics']['image_retrieval_recall@1'] >= 0.75  # the trained words are recognised
    assert len(os.listdir(cache)) == 2  # one cache entry per model identity


def test_a_transformers_peer_classifies_zero_shot_through_the_same_command(trained, tmp_path, capsys):
    _, hf_folder = trained
    colours = write_image_folder(tmp_path / 'colours', 3)
    record = run(capsys, 'zeroshot', '--dataset', 'imagefolder', '--root', str(colours), '--model', str(hf_folder),
                 '--no-cache', '--templates', str(_templates(tmp_path)))
    assert record['metrics']['acc1'] >= 0.75 and record['runtime']['family'] == 'transformers'


def test_an_open_clip_model_evaluates_through_the_same_command(tiny_open_clip, tmp_path, capsys):
    config, weights = tiny_open_clip
    root = write_xtd10(tmp_path / 'xtd10')
    cache = tmp_path / 'cache'
    spec = f'open_clip:{config}@{weights}'
    first = run(capsys, 'retrieval', '--dataset', 'xtd10', '--root', str(root), '--model', spec,
                '--feature-cache', str(cache))
    assert first['runtime']['family'] == 'open_clip'
    assert set(first['metrics']) >= {'image_retrieval_recall@1', 'text_retrieval_recall@10'}
    (entry,) = os.listdir(cache)
    again = run(capsys, 'retrieval', '--dataset', 'xtd10', '--root', str(root), '--model', spec,
                '--feature-cache', str(cache))
    assert again['metrics'] == first['metrics'] and os.listdir(cache) == [entry]  # the same identity: read back
    colours = write_image_folder(tmp_path / 'colours', 2)
    record = run(capsys, 'zeroshot', '--dataset', 'imagefolder', '--root', str(colours), '--model', spec, '--no-cache')
    assert record['n_images'] == 8 and 0 <= record['metrics']['acc1'] <= 1


def test_peers_and_the_predictor_have_the_interface_the_harness_calls(trained, tiny_open_clip):
    import ruclip
    ruclip_folder, hf_folder = trained
    config, weights = tiny_open_clip
    predictor = ruclip.Predictor(*ruclip.load(str(ruclip_folder)), quiet=True)
    for model in (predictor, models.load_peer(str(hf_folder), quiet=True),
                  models.load_peer(f'open_clip:{config}@{weights}', quiet=True)):
        assert isinstance(model, models.DualEncoder)
        latents = model.get_text_latents(['кот', 'пёс'], templates=['{}', 'фото: {}'])
        assert latents.shape == (2, model.identity.embed_dim)
        assert torch.allclose(latents.norm(dim=1), torch.ones(2), atol=1e-5)


def test_peer_identity_follows_the_weights(tiny_open_clip, tmp_path):
    config, weights = tiny_open_clip
    one = models.load_peer(f'open_clip:{config}@{weights}', quiet=True)
    same = models.load_peer(f'open_clip:{config}@{weights}', quiet=True)
    other = models.load_peer(f'open_clip:{config}', quiet=True)  # random weights
    assert one.identity == same.identity and one.identity != other.identity
    assert one.identity.image_size == 32 and one.identity.embed_dim == 16


def test_model_kind_tells_the_kinds_apart(trained, tmp_path):
    ruclip_folder, hf_folder = trained
    assert models.model_kind(str(ruclip_folder)) == 'ruclip'
    assert models.model_kind(str(hf_folder)) == 'transformers'
    assert models.model_kind('ruclip-vit-base-patch32-224') == 'ruclip'
    assert models.model_kind('open_clip:ViT-B-32@openai') == 'open_clip'
    assert models.model_kind('google/siglip2-base-patch16-224') == 'transformers'
    with pytest.raises(ValueError, match='open_clip:ARCH'):
        models.model_kind('no-such-model')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no config.json'):
        models.model_kind(str(tmp_path / 'empty'))


def test_a_peer_refuses_openvino_and_int8(tiny_open_clip, tmp_path, capsys):
    config, _ = tiny_open_clip
    root = write_xtd10(tmp_path / 'xtd10')
    code = main(['eval', 'retrieval', '--dataset', 'xtd10', '--root', str(root), '--model', f'open_clip:{config}',
                 '--dtype', 'int8', '--no-cache', '-q'])
    assert code == 2 and 'peers run on PyTorch in fp32' in capsys.readouterr().err


def _templates(tmp_path):
    path = tmp_path / 'templates.txt'
    path.write_text('фото: {}.\nна фото {}.\n', encoding='utf-8')
    return path


def test_a_siglip_peer_pads_texts_to_full_length_as_siglip_was_trained():
    """SigLIP reads its text latent at the last position, so its texts must be padded to the full
    length; a tiny random SiglipModel with a word-level tokenizer shows the peer does it."""
    import types

    import transformers
    from tokenizers import Tokenizer, models as token_models, pre_tokenizers
    words = {'<pad>': 0, '<unk>': 1, '</s>': 2, 'кот': 3, 'пёс': 4, 'фото': 5}
    backend = Tokenizer(token_models.WordLevel(words, unk_token='<unk>'))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, pad_token='<pad>', unk_token='<unk>',
                                                     eos_token='</s>')
    tower = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    torch.manual_seed(0)
    model = transformers.SiglipModel(transformers.SiglipConfig(
        text_config=dict(tower, vocab_size=len(words), max_position_embeddings=8, pad_token_id=0, eos_token_id=2),
        vision_config=dict(tower, image_size=32, patch_size=16)))
    processor = types.SimpleNamespace(tokenizer=tokenizer,
                                      image_processor=transformers.SiglipImageProcessor(size={'height': 32, 'width': 32}))
    peer = models.TransformersEncoder(model, processor, 'tiny-siglip', quiet=True)
    latents = peer.get_caption_latents(['кот', 'фото пёс'])

    def expected(padding):
        inputs = tokenizer(['кот', 'фото пёс'], padding=padding, truncation=True, max_length=8, return_tensors='pt')
        with torch.inference_mode():
            raw = models._features(model.get_text_features(**inputs))
        return raw / raw.norm(dim=1, keepdim=True)
    assert torch.allclose(latents, expected('max_length'), atol=1e-6)
    assert not torch.allclose(latents, expected(True), atol=1e-3)  # dynamic padding would give other latents
    assert peer.identity.image_size == 32 and peer.identity.embed_dim == 16


def test_a_naflex_siglip2_folder_is_refused_with_the_alternatives(tmp_path):
    import transformers
    if not hasattr(transformers, 'Siglip2Config'):
        pytest.skip('this transformers has no SigLIP 2')
    transformers.Siglip2Config().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match='NaFlex.*open_clip:ViT-B-16-SigLIP2@webli'):
        models.load_peer(str(tmp_path))
