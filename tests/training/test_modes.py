"""What each mode trains, and only that; the loss; WiSE-FT, LoRA, gradient checkpointing, NaN."""
import pytest
import torch
import torch.nn.functional as F

import ruclip
from ruclip.training import TrainingDiverged, clip_loss, finetune
from ruclip.training.towers import merge_lora, set_trainable

QUICK = dict(epochs=1, batch_size=24, lr=1e-3, precision='fp32', quiet=True)


def _changed(report, base):
    return {name for name, tensor in report.model.state_dict().items() if not torch.equal(tensor, base[name])}


@pytest.fixture(scope='module')
def base_weights(tiny_checkpoint):
    return ruclip.load(tiny_checkpoint)[0].state_dict()


@pytest.mark.parametrize('mode, trains, stays', [
    (dict(lock_text=True), {'visual.proj', 'visual.conv1.weight', 'logit_scale'}, ('token_embedding', 'transformer.',
                                                                                   'ln_final', 'text_projection')),
    (dict(unlocked_blocks=0), {'visual.proj', 'text_projection', 'logit_scale'}, ('visual.transformer', 'visual.ln',
                                                                                  'visual.conv1', 'transformer.',
                                                                                  'ln_final', 'token_embedding')),
    (dict(unlocked_blocks=1), {'visual.transformer.resblocks.1.mlp.c_fc.weight', 'visual.ln_post.weight',
                               'transformer.resblocks.1.attn.in_proj_weight', 'ln_final.bias'},
     ('visual.transformer.resblocks.0.', 'transformer.resblocks.0.', 'visual.conv1', 'token_embedding',
      'positional_embedding', 'visual.positional_embedding', 'visual.class_embedding', 'visual.ln_pre')),
    (dict(lora=4), {'transformer.resblocks.0.attn.in_proj_weight', 'visual.transformer.resblocks.1.mlp.c_proj.weight',
                    'transformer.resblocks.1.attn.out_proj.weight'},
     ('visual.proj', 'text_projection', 'token_embedding', 'visual.ln_post',
      'transformer.resblocks.0.attn.in_proj_bias',
      'transformer.resblocks.0.ln_1', 'visual.conv1')),
], ids=['lock_text', 'projections', 'last_block', 'lora'])
def test_each_mode_trains_what_it_names_and_nothing_else(mode, trains, stays, shapes, tiny_checkpoint, base_weights,
                                                         tmp_path):
    report = finetune(tiny_checkpoint, [shapes['train']], tmp_path / 'run', **QUICK, **mode)
    changed = _changed(report, base_weights)
    assert trains <= changed
    assert not {name for name in changed if name.startswith(stays)}, sorted(changed)
    assert sorted(report.model.state_dict()) == sorted(base_weights)  # LoRA merged: CLIP's names again
    assert report.losses[-1] < report.losses[0]


def test_lora_leaves_the_base_weights_unchanged_until_merged(tiny_checkpoint):
    clip, processor = ruclip.load(tiny_checkpoint)
    base = {name: tensor.clone() for name, tensor in clip.state_dict().items()}
    set_trainable(clip, train_image=False, train_text=True, unlocked_blocks=None, lora=2, lora_alpha=4.0)
    trained = [p for p in clip.parameters() if p.requires_grad]
    assert all('lora' in name or name == 'logit_scale' for name, p in clip.named_parameters() if p.requires_grad)
    optimizer = torch.optim.SGD(trained, lr=0.1)
    ids = processor(text=['красный круг', 'синий квадрат', 'жёлтый треугольник'])['input_ids']
    for _ in range(3):
        clip.encode_text(ids).pow(2).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    block = clip.transformer.resblocks[0]
    original = block.attn.parametrizations.in_proj_weight.original
    assert torch.equal(original, base['transformer.resblocks.0.attn.in_proj_weight'])
    adapter = block.attn.parametrizations.in_proj_weight[0]
    expected = original + adapter.lora_B @ adapter.lora_A * adapter.scale
    assert not torch.equal(expected, original)
    merge_lora(clip)
    torch.testing.assert_close(clip.transformer.resblocks[0].attn.in_proj_weight, expected)
    assert sorted(clip.state_dict()) == sorted(base)


def test_clip_loss_is_clips_with_unique_captions_and_counts_same_captions_as_positives():
    torch.manual_seed(0)
    images, texts = (F.normalize(torch.randn(6, 8), dim=-1) for _ in range(2))
    scale = torch.tensor(2.0)
    logits = scale.exp() * images @ texts.t()
    clip_formula = (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.t(), torch.arange(6))) / 2
    torch.testing.assert_close(clip_loss(images, texts, scale, torch.arange(6)), clip_formula)
    groups = torch.tensor([0, 0, 1, 2, 2, 2])  # rows 0-1 and 3-5 share a caption
    same = groups[:, None] == groups[None, :]
    target = same.float() / same.sum(1, keepdim=True)
    expected = (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
    torch.testing.assert_close(clip_loss(images, texts, scale, groups), expected)


def test_wise_ft_mixes_base_and_fine_tuned_weights(shapes, tiny_checkpoint, base_weights, tmp_path):
    tuned = finetune(tiny_checkpoint, [shapes['train']], tmp_path / 'tuned', **QUICK).model.state_dict()
    mixed = finetune(tiny_checkpoint, [shapes['train']], tmp_path / 'mixed', wise_ft=0.25, **QUICK).model.state_dict()
    for name, tensor in mixed.items():
        torch.testing.assert_close(tensor, 0.75 * base_weights[name] + 0.25 * tuned[name])
    assert not torch.equal(mixed['visual.proj'], tuned['visual.proj'])


def test_gradient_checkpointing_gives_the_same_losses(shapes, tiny_checkpoint, tmp_path):
    plain = finetune(tiny_checkpoint, [shapes['train']], tmp_path / 'plain', **QUICK)
    checkpointed = finetune(tiny_checkpoint, [shapes['train']], tmp_path / 'ckpt', grad_checkpointing=True, **QUICK)
    assert checkpointed.losses == pytest.approx(plain.losses, rel=1e-5)


def test_gradient_accumulation_makes_fewer_optimizer_steps(shapes, tiny_checkpoint, tmp_path):
    report = finetune(tiny_checkpoint, [shapes['train']], tmp_path / 'run', grad_accum=2, **QUICK)
    assert report.steps == 3  # 5 batches of 24: steps of 2, 2 and 1 batches


def test_a_nan_loss_stops_the_run_before_it_spoils_the_weights(shapes, tiny_checkpoint, tmp_path, monkeypatch):
    import ruclip.training.loop as loop

    monkeypatch.setattr(loop, 'clip_loss', lambda *args: torch.tensor(float('nan'), requires_grad=True))
    with pytest.raises(TrainingDiverged, match='loss became nan at step 1.*--lr'):
        finetune(tiny_checkpoint, [shapes['train']], tmp_path / 'run', **QUICK)
    assert not (tmp_path / 'run' / 'model.safetensors').exists()


def test_class_folders_train_with_templates_and_keep_best(shapes, tiny_checkpoint, tmp_path):
    report = finetune(tiny_checkpoint, [shapes['train_folder']], tmp_path / 'run', val=[shapes['val']],
                      templates=['{}', 'фото: {}'], keep_best=True, lock_image=True, **dict(QUICK, epochs=2))
    best = report.best
    assert best['metric'] == 'zero_shot_acc1'
    assert best['value'] == max(v['metrics']['zero_shot_acc1'] for v in report.validations if v['epoch'] > 0
                                and not v.get('output'))
    assert report.validations[-1]['output'] and report.validations[-1]['metrics']['zero_shot_acc1'] == best['value']


def test_a_zero_shot_check_set_is_measured_and_a_collapse_stops_the_run(shapes, tiny_checkpoint, tmp_path,
                                                                       monkeypatch):
    report = finetune(tiny_checkpoint, [shapes['train']], tmp_path / 'run', zero_shot_check=shapes['val'],
                      **QUICK)
    assert [set(v['metrics']) for v in report.validations] == [{'check_zero_shot_acc1', 'check_chance'}] * 2

    import ruclip.training.loop as loop
    measured = iter([0.6, 0.25])  # before training: 7x chance; after the epoch: less than half of it
    monkeypatch.setattr(loop, 'validate', lambda *args: dict(zero_shot_acc1=next(measured), chance=1 / 12))
    with pytest.raises(TrainingDiverged, match='collapsed from 0.600 before training to 0.250'):
        finetune(tiny_checkpoint, [shapes['train']], tmp_path / 'forgets', zero_shot_check=shapes['val'], **QUICK)
    assert not (tmp_path / 'forgets' / 'model.safetensors').exists()


def test_each_picture_goes_through_the_image_tower_once_however_many_captions_name_it(tiny_checkpoint, tmp_path,
                                                                                         monkeypatch):
    from helpers.images import rgb_image
    for i in range(3):
        rgb_image(24, 24, seed=i).save(tmp_path / f'{i}.png')
    rows = [(f'{i % 3}.png', f'подпись {i}') for i in range(12)] + [('missing.png', 'нет файла')] * 2
    (tmp_path / 'pairs.csv').write_text('image_path,caption\n' + ''.join(f'{p},{c}\n' for p, c in rows),
                                        encoding='utf-8')
    embedded = []
    real = ruclip.Predictor.embed_images
    monkeypatch.setattr(ruclip.Predictor, 'embed_images',
                        lambda self, images, **kw: embedded.append(list(images)) or real(self, images, **kw))
    report = finetune(tiny_checkpoint, [str(tmp_path / 'pairs.csv')], tmp_path / 'run', lock_image=True,
                      **dict(QUICK, batch_size=4))
    assert [len(images) for images in embedded] == [4]  # 3 pictures and the missing file, once each
    assert report.train_pairs == 12 and len(report.skipped) == 2  # both rows naming the missing file


def test_metrics_go_to_tensorboard_too_when_it_is_installed(shapes, tiny_checkpoint, tmp_path):
    pytest.importorskip('tensorboard')
    import json
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    report = finetune(tiny_checkpoint, [shapes['train']], tmp_path / 'run', **QUICK, lock_image=True)
    events = EventAccumulator(str(tmp_path / 'run' / 'tensorboard'))
    events.Reload()
    logged = [(event.step, event.value) for event in events.Scalars('train/loss')]
    steps = [json.loads(line) for line in (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()]
    expected = [(line['step'], line['loss']) for line in steps if line['event'] == 'step']
    assert len(logged) == report.steps == len(expected) > 0
    assert [step for step, _ in logged] == [step for step, _ in expected]
    assert [value for _, value in logged] == pytest.approx([value for _, value in expected], rel=1e-6)
