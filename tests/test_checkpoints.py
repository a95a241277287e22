"""The tests' tiny checkpoints: their weights depend on the seed alone, not on the model code's initialisation."""
import torch

from helpers.checkpoints import TINY_ARCHITECTURES, write_checkpoint


def weights(folder):
    return torch.load(folder / 'pytorch_model.bin', weights_only=True)


def test_weights_do_not_depend_on_the_models_initialisation(tmp_path, bpe_model, monkeypatch):
    architecture = TINY_ARCHITECTURES['ruclip-vit-base-patch32-224']
    before = weights(write_checkpoint(tmp_path / 'before', architecture, bpe_model, seed=5))
    monkeypatch.setattr(torch.nn.init, 'normal_', lambda tensor, *args, **kwargs: tensor.fill_(7.0))  # a new init
    torch.manual_seed(123)
    after = weights(write_checkpoint(tmp_path / 'after', architecture, bpe_model, seed=5))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    other_seed = weights(write_checkpoint(tmp_path / 'other', architecture, bpe_model, seed=6))
    assert not torch.equal(before['visual.proj'], other_seed['visual.proj'])
