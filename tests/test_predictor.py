"""Predictor: any iterable of images, quiet mode, no autograd, clear errors."""
import pytest
import torch

import ruclip
from helpers.images import rgb_image


@pytest.fixture(scope='module')
def predictor(tiny_checkpoint):
    clip, processor = ruclip.load(str(tiny_checkpoint))
    return ruclip.Predictor(clip, processor, 'cpu', bs=3, quiet=True)


@pytest.fixture(scope='module')
def photos():
    return [rgb_image(64 + 9 * i, 48 + 5 * i, seed=i) for i in range(7)]


def test_labels_are_the_argmax_of_the_cosine(predictor, photos):
    text_latents = predictor.get_text_latents(['кошка', 'собака', 'дом'])
    assert text_latents.shape == (3, 24) and not text_latents.requires_grad
    torch.testing.assert_close(text_latents.norm(dim=-1), torch.ones(3))
    labels = predictor.run(photos, text_latents)
    image_latents = predictor.get_image_latents(photos)
    assert labels == (image_latents @ text_latents.t()).argmax(1).tolist()
    assert all(isinstance(label, int) for label in labels)


def test_generators_and_batches_give_the_same_latents(predictor, photos):
    from_list = predictor.get_image_latents(photos)
    from_generator = predictor.get_image_latents(photo for photo in photos)
    one_by_one = torch.cat([predictor.get_image_latents([photo]) for photo in photos])
    torch.testing.assert_close(from_generator, from_list, atol=0, rtol=0)
    torch.testing.assert_close(one_by_one, from_list, atol=1e-6, rtol=0)


def test_labels_are_lowercased_and_stripped(predictor):
    torch.testing.assert_close(predictor.get_text_latents([' КОШКА ']), predictor.get_text_latents(['кошка']))


def test_progress_bar_unless_quiet(tiny_checkpoint, photos, capsys):
    clip, processor = ruclip.load(str(tiny_checkpoint))
    loud = ruclip.Predictor(clip, processor, 'cpu', quiet=False)
    loud.run(photos, loud.get_text_latents(['a', 'b']))
    assert '7/7' in capsys.readouterr().err
    quiet = ruclip.Predictor(clip, processor, 'cpu', quiet=True)
    quiet.run(photos, quiet.get_text_latents(['a', 'b']))
    assert capsys.readouterr().err == ''


def test_bad_inputs_are_explained(predictor, photos, tiny_checkpoint):
    with pytest.raises(TypeError, match=r'class_labels must be a list of str \(or any iterable of str\), got str'):
        predictor.get_text_latents('кошка')
    with pytest.raises(ValueError, match='class_labels is empty'):
        predictor.get_text_latents([])
    with pytest.raises(TypeError, match='every item of class_labels must be a str, got int'):
        predictor.get_text_latents(['a', 1])
    assert predictor.run([], predictor.get_text_latents(['a'])) == []  # as the original: an empty folder in a loop
    assert predictor.get_image_latents(iter([])).shape == (0, 24)
    with pytest.raises(TypeError, match='text_latents must be'):
        predictor.run(photos, ['a'])
    with pytest.raises(ValueError, match=r'text_latents must be \[n_classes, 24\] for this model.*got shape \[2, 512\]'):
        predictor.run(photos, torch.zeros(2, 512))
    clip, processor = ruclip.load(str(tiny_checkpoint))
    with pytest.raises(ValueError, match=r"template 'фото кошки' needs a \{\} for the label"):
        ruclip.Predictor(clip, processor, 'cpu', templates=['фото кошки'])
    with pytest.raises(ValueError, match=r'batch_size \(bs\) must be a positive integer'):
        ruclip.Predictor(clip, processor, 'cpu', bs=0)


def test_latents_are_ordinary_tensors_for_training_and_editing(predictor, photos):
    image_latents = predictor.get_image_latents(photos)
    text_latents = predictor.get_text_latents(['кошка', 'собака'])
    assert not image_latents.is_inference() and not text_latents.is_inference()
    probe = torch.nn.Linear(image_latents.shape[1], 2)
    torch.nn.functional.cross_entropy(probe(image_latents), torch.tensor([0, 1] * 3 + [0])).backward()
    assert probe.weight.grad is not None
    text_latents /= 2
    head = torch.nn.Parameter(text_latents)
    assert head.requires_grad


def test_labels_may_be_any_iterable_of_str(predictor):
    import numpy as np
    expected = predictor.get_text_latents(['кошка', 'собака'])
    for labels in (np.array(['кошка', 'собака']), {'кошка': 0, 'собака': 1}.keys(), ('кошка', 'собака'),
                   (label for label in ['кошка', 'собака'])):
        torch.testing.assert_close(predictor.get_text_latents(labels), expected, atol=0, rtol=0)
    assert predictor.get_text_latents({'кошка'}).shape == (1, 24)
    with pytest.raises(TypeError, match='class_labels must be a list of str .*got int'):
        predictor.get_text_latents(5)


def test_tasks_take_generators_of_labels_and_texts(predictor):
    images = torch.nn.functional.normalize(torch.randn(3, 24), dim=-1)
    labels = ['кошка', 'собака']
    top = ruclip.classify(predictor, images, (label for label in labels), k=2)
    assert top.labels == ruclip.classify(predictor, images, labels, k=2).labels
    ranking = ruclip.rank(predictor, images, (text for text in labels), k=2)
    assert sorted(ranking.texts_per_image.labels[0]) == labels


def test_task_errors_name_their_own_parameters(predictor):
    with pytest.raises(TypeError, match='texts must be a list of str .*got str'):
        ruclip.rank(predictor, torch.zeros(1, 24), 'кошка')
    with pytest.raises(TypeError, match='every item of texts must be a str'):
        ruclip.encode_texts(predictor, ['кошка', None])
