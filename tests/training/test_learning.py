"""Fine-tuning trains: from the tests' random tiny checkpoint, held-out zero-shot accuracy on
coloured shapes goes from chance to several times chance; what must not change does not; the
output folder is the model trained in memory."""
import json

import pytest
import torch

import ruclip
from ruclip.training import finetune

from helpers.pictures import CLASSES

LEARNING = dict(epochs=6, batch_size=24, lr=2e-3, precision='fp32', quiet=True)
CHANCE = 1 / len(CLASSES)


def _image_tower(state_dict):
    return {name: tensor.clone() for name, tensor in state_dict.items() if name.startswith('visual.')}


@pytest.mark.parametrize('mode', ['lock_image', 'full'])
def test_finetuning_lifts_held_out_zero_shot_accuracy_from_chance(mode, shapes, tiny_checkpoint, tmp_path):
    base, processor = ruclip.load(tiny_checkpoint)
    out = tmp_path / 'run'
    report = finetune(tiny_checkpoint, [shapes['train']], out, val=[shapes['val']],
                      lock_image=mode == 'lock_image', **LEARNING)

    before, after = report.validation_before['zero_shot_acc1'], report.validation_after['zero_shot_acc1']
    assert report.validation_before['chance'] == pytest.approx(CHANCE)
    assert before < 2 * CHANCE, report.validations
    assert after >= 3.5 * CHANCE, report.validations  # 12 classes: at least 29% of 60 held-out pictures
    assert report.losses[-1] < report.losses[0] - 0.3

    # the folder is a checkpoint ruclip.load takes, with the trained model's latents
    loaded, loaded_processor = ruclip.load(out)
    predictor, trained = (ruclip.Predictor(model, loaded_processor, quiet=True) for model in (loaded, report.model))
    images = sorted(str(path) for path in shapes['val'].rglob('*.png'))[:8]
    torch.testing.assert_close(predictor.get_image_latents(images), trained.get_image_latents(images))
    torch.testing.assert_close(predictor.get_text_latents(CLASSES), trained.get_text_latents(CLASSES))
    assert predictor.identity.fingerprint == report.identity['fingerprint']

    changed = {name for name, tensor in loaded.state_dict().items() if not torch.equal(tensor, base.state_dict()[name])}
    if mode == 'lock_image':
        assert not changed & set(_image_tower(base.state_dict())), 'the locked image tower changed'
        assert 'text_projection' in changed
    else:
        assert {'visual.proj', 'text_projection', 'logit_scale'} <= changed

    recorded = json.loads((out / 'training_args.json').read_text())
    assert recorded['base_model']['fingerprint'] == ruclip.Predictor(base, processor).identity.fingerprint
    assert recorded['options']['lock_image'] is (mode == 'lock_image')
    assert recorded['train']['fingerprint'] and recorded['train']['rows'] == 120
    result = json.loads((out / 'training_report.json').read_text())
    assert result['final_loss'] == pytest.approx(report.losses[-1])
    assert result['validation_after']['zero_shot_acc1'] == after
    steps = [json.loads(line) for line in (out / 'metrics.jsonl').read_text().splitlines()]
    assert [record['step'] for record in steps if record['event'] == 'step'] == list(range(1, report.steps + 1))
    assert 'Fine-tuned from' in (out / 'README.md').read_text()
