"""Probabilities, top-k and ranking: the numbers are the model's (forward, Predictor.run, the matrix)."""
import numpy as np
import pytest
import torch
from PIL import Image

import ruclip
from ruclip import scores

LABELS = ['кошка', 'собака', 'лошадь', 'птица', 'самолёт', 'машина', 'дом', 'дерево']
CAPTIONS = ['кошка спит на диване', 'собака бежит по полю', 'красный дом у реки', 'белая лошадь',
            'самолёт в небе', 'машина на улице', 'птица на ветке']


def random_images(n, seed=0):
    rng = np.random.default_rng(seed)
    sizes = [(64, 48), (40, 90), (100, 100), (33, 34)]
    return [Image.fromarray(rng.integers(0, 256, (*sizes[i % 4][::-1], 3), dtype=np.uint8)) for i in range(n)]


@pytest.fixture(scope='module')
def predictor(tiny_checkpoint):
    clip, processor = ruclip.load(tiny_checkpoint)
    return ruclip.Predictor(clip, processor, 'cpu', bs=4, quiet=True)


@pytest.fixture(scope='module')
def images():
    return random_images(10)


def test_probabilities_are_the_softmax_of_the_models_logits(predictor, images):
    """With the plain '{}' template, classify's probabilities are softmax(CLIP.forward's logits)."""
    plain = ruclip.Predictor(predictor.clip_model, predictor.clip_processor, templates=['{}'], quiet=True)
    top = ruclip.classify(plain, images, LABELS, k=len(LABELS))
    inputs = predictor.clip_processor(text=LABELS, images=images)
    with torch.inference_mode():
        logits_per_image, _ = predictor.clip_model(inputs['input_ids'], inputs['pixel_values'])
    expected = logits_per_image.softmax(dim=-1)  # [n_images, n_labels]
    got = torch.zeros_like(expected).scatter_(1, top.indices, top.scores)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(top.scores.sum(1), torch.ones(len(images)), atol=1e-5, rtol=0)


def test_classify_top_1_is_predictor_run(predictor, images):
    text_latents = predictor.get_text_latents(LABELS)
    top = ruclip.classify(predictor, images, LABELS, k=3)
    assert top.indices[:, 0].tolist() == predictor.run(images, text_latents)
    assert top.indices.shape == top.scores.shape == (len(images), 3)
    assert top.labels == [[LABELS[i] for i in row] for row in top.indices.tolist()]
    assert bool((top.scores[:, :-1] >= top.scores[:, 1:]).all())  # best first


def test_classify_from_latents_equals_classify_from_images(predictor, images):
    latents = predictor.get_image_latents(images)
    text_latents = predictor.get_text_latents(LABELS)
    from_images = ruclip.classify(predictor, images, LABELS, k=4)
    from_latents = ruclip.classify(predictor, latents, LABELS, k=4, text_latents=text_latents)
    assert torch.equal(from_images.indices, from_latents.indices)
    torch.testing.assert_close(from_images.scores, from_latents.scores)
    full = ruclip.probabilities(latents, text_latents, predictor.clip_model.logit_scale.exp())
    torch.testing.assert_close(full.sum(1), torch.ones(len(images)))
    torch.testing.assert_close(from_latents.scores, full.topk(4).values)


def test_top_k_cuts_k_to_the_number_of_columns_and_names_them():
    scores_ = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    top = ruclip.top_k(scores_, 5, labels=['a', 'b', 'c'])
    assert top.indices.tolist() == [[1, 2, 0], [0, 1, 2]]
    assert top.labels == [['b', 'c', 'a'], ['a', 'b', 'c']]
    assert top.tolist()[0][0] == dict(index=1, score=pytest.approx(0.7), label='b')
    assert 'label' not in ruclip.top_k(scores_, 1).tolist()[0][0]


@pytest.mark.parametrize('call, error, match', [
    (lambda: ruclip.top_k(torch.zeros(3), 1), TypeError, r'\[rows, columns\]'),
    (lambda: ruclip.top_k(torch.zeros(2, 3), 0), ValueError, 'positive integer'),
    (lambda: ruclip.top_k(torch.zeros(2, 3), 1, labels=['a']), ValueError, '1 labels for 3'),
    (lambda: ruclip.similarity(torch.zeros(2, 4), torch.zeros(2, 5)), ValueError, 'same model'),
    (lambda: ruclip.similarity(torch.zeros(0, 4), torch.zeros(2, 4)), ValueError, 'empty'),
    (lambda: ruclip.similarity([[1.0]], torch.zeros(2, 4)), TypeError, 'image_latents'),
    (lambda: ruclip.probabilities(torch.ones(2, 4), torch.ones(2, 4), 0), ValueError, 'logit_scale'),
    (lambda: ruclip.probabilities(torch.ones(2, 4), torch.ones(2, 4), float('inf')), ValueError, 'finite positive'),
    (lambda: ruclip.probabilities(torch.ones(2, 4), torch.ones(2, 4), float('nan')), ValueError, 'finite positive'),
    (lambda: ruclip.probabilities(torch.ones(2, 4), torch.ones(2, 4), torch.ones(3)), ValueError,
     r'scale must be one number.*shape \[3\]'),
    (lambda: ruclip.probabilities(torch.ones(2, 4), torch.ones(2, 4), [1.0, 2.0]), ValueError,
     r'scale must be one number.*\[1.0, 2.0\]'),
    (lambda: ruclip.top_k(torch.zeros(2, 3), 1, labels='abc'), TypeError, "list of names.*'abc'"),
    (lambda: ruclip.rank_latents(torch.ones(2, 4), torch.ones(3, 4), texts=['a']), ValueError, '1 texts'),
])
def test_bad_inputs_raise_errors_that_name_them(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_rank_agrees_with_the_similarity_matrix(predictor, images):
    image_latents = predictor.get_image_latents(images)
    text_latents = ruclip.encode_texts(predictor, CAPTIONS)
    matrix = ruclip.similarity(image_latents, text_latents)  # [n_images, n_texts]
    ranking = ruclip.rank(predictor, image_latents, CAPTIONS, k=3, text_latents=text_latents)
    per_image, per_text = ranking.texts_per_image, ranking.images_per_text
    assert per_image.indices.tolist() == matrix.argsort(dim=1, descending=True)[:, :3].tolist()
    assert per_text.indices.tolist() == matrix.t().argsort(dim=1, descending=True)[:, :3].tolist()
    torch.testing.assert_close(per_image.scores, matrix.gather(1, per_image.indices))
    torch.testing.assert_close(per_text.scores, matrix.t().gather(1, per_text.indices))
    assert per_image.labels[0] == [CAPTIONS[i] for i in per_image.indices[0].tolist()]
    assert per_text.labels is None


def test_rank_in_small_chunks_gives_the_same_ranking(monkeypatch, predictor, images):
    image_latents, text_latents = predictor.get_image_latents(images), ruclip.encode_texts(predictor, CAPTIONS)
    whole = ruclip.rank_latents(image_latents, text_latents, k=4)
    monkeypatch.setattr(scores, 'CHUNK_ELEMENTS', 10)  # one or two rows at a time
    chunked = ruclip.rank_latents(image_latents, text_latents, k=4, images=[f'{i}.jpg' for i in range(10)])
    for got, expected in ((chunked.texts_per_image, whole.texts_per_image), (chunked.images_per_text, whole.images_per_text)):
        assert torch.equal(got.indices, expected.indices)
        torch.testing.assert_close(got.scores, expected.scores)
    assert chunked.images_per_text.labels[0][0] == f'{chunked.images_per_text.indices[0, 0]}.jpg'


def test_encode_texts_are_the_models_normalised_text_latents(predictor):
    expected = predictor.clip_model.encode_text(predictor.clip_processor(text=CAPTIONS)['input_ids'], normalize=True)
    torch.testing.assert_close(ruclip.encode_texts(predictor, CAPTIONS), expected, atol=1e-6, rtol=1e-5)


def test_embed_images_equals_get_image_latents_and_skips_unreadable_files(tmp_path, predictor, images, caplog):
    files = []
    for i, image in enumerate(images):
        files.append(tmp_path / f'{i}.png')
        image.save(files[-1])
    (tmp_path / 'broken.jpg').write_bytes(b'not an image')
    files.insert(3, tmp_path / 'broken.jpg')
    files.append(tmp_path / 'missing.png')
    embeddings = ruclip.embed_images(predictor, files)
    readable = [str(path) for path in files if path.name not in ('broken.jpg', 'missing.png')]
    assert embeddings.files == readable
    assert [path for path, _ in embeddings.skipped] == [str(tmp_path / 'broken.jpg'), str(tmp_path / 'missing.png')]
    # the same up to float rounding: a skipped file leaves its batch one image short
    torch.testing.assert_close(embeddings.latents, predictor.get_image_latents(readable), atol=1e-6, rtol=0)
    assert 'broken.jpg' in caplog.text and 'missing.png' in caplog.text


def test_embed_images_of_only_unreadable_files_is_an_error(tmp_path, predictor):
    (tmp_path / 'a.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match='none of the 1 image files'):
        ruclip.embed_images(predictor, [tmp_path / 'a.jpg'])


def test_find_images_walks_folders_in_order_and_keeps_explicit_files(tmp_path):
    (tmp_path / 'b').mkdir()
    for name in ('b/2.png', 'b/1.JPG', 'a.webp', 'notes.txt', '.hidden.png'):
        (tmp_path / name).write_bytes(b'')
    assert ruclip.find_images(tmp_path) == [str(tmp_path / name) for name in ('a.webp', 'b/1.JPG', 'b/2.png')]
    assert ruclip.find_images([tmp_path / 'notes.txt']) == [str(tmp_path / 'notes.txt')]
    with pytest.raises(FileNotFoundError, match='nope'):
        ruclip.find_images([tmp_path / 'nope'])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no image files'):
        ruclip.find_images(tmp_path / 'empty')


def test_tasks_keep_the_predictors_settings(tmp_path, predictor, images, monkeypatch):
    """embed_images and encode_texts run with the caller's Predictor settings (workers, draft mode,
    batch size), changing only templates and the progress bar."""
    import ruclip.predictor
    seen = []
    real_image_batches = ruclip.predictor.image_batches

    def spy(*args, **kwargs):
        seen.append((args[2], kwargs['num_workers'], kwargs['draft']))
        return real_image_batches(*args, **kwargs)

    monkeypatch.setattr(ruclip.predictor, 'image_batches', spy)
    tuned = ruclip.Predictor(predictor.clip_model, predictor.clip_processor, 'cpu', bs=3, num_workers=1,
                             jpeg_draft=True, quiet=True)
    files = []
    for i, image in enumerate(images[:4]):
        image.convert('RGB').save(tmp_path / f'{i}.jpg')
        files.append(tmp_path / f'{i}.jpg')
    ruclip.embed_images(tuned, files)
    assert seen == [(3, 1, True)]
    assert tuned.quiet and tuned.templates == predictor.templates  # the caller's predictor is untouched
    texts = ruclip.encode_texts(tuned, CAPTIONS)
    plain = ruclip.Predictor(predictor.clip_model, predictor.clip_processor, 'cpu', templates=['{}'], quiet=True)
    torch.testing.assert_close(texts, plain.get_text_latents(CAPTIONS))
