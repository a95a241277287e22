"""Large photos: JPEG draft decoding by default in `ruclip index` (issue 22, part 1), recorded in the
index's model identity, close to the exact decode; --exact-decode turns it off."""
import json

import numpy as np
import pytest
import torch

import ruclip
from helpers.library import predictor_for
from helpers.photos import write_photo
from ruclip.cli import main
from ruclip.identity import DRAFT_POLICY_1, ModelIdentity, check_same_model
from ruclip.image import JPEG_DRAFT_POLICY, ImageTransform, open_image


def cli_index(*arguments) -> int:
    return main(['index', *map(str, arguments), '-q', '--backend', 'torch', '--dtype', 'fp32'])


def test_the_command_line_indexes_with_draft_decoding_and_records_it(tmp_path, tiny_checkpoint, capsys):
    library = tmp_path / 'lib'
    library.mkdir()
    write_photo(library / 'a.jpg', 1200, 900, seed=1)
    assert cli_index(library, '--index', tmp_path / 'x.index', '--model', tiny_checkpoint) == 0
    recorded = ruclip.ImageIndex(tmp_path / 'x.index').model
    assert recorded['jpeg_draft'] is True and recorded['draft_policy'] == JPEG_DRAFT_POLICY
    latent = ruclip.ImageIndex(tmp_path / 'x.index')._latents().latents[0]
    drafted = predictor_for(tiny_checkpoint, jpeg_draft=True).get_image_latents([str(library / 'a.jpg')])[0]
    np.testing.assert_array_equal(latent, drafted.numpy())  # what Predictor(jpeg_draft=True) computes

    write_photo(library / 'b.jpg', 1200, 900, seed=2)
    capsys.readouterr()
    assert cli_index(library, '--index', tmp_path / 'x.index', '--exact-decode') == 2  # never both in one index
    assert 'jpeg_draft True vs False' in capsys.readouterr().err
    assert len(ruclip.ImageIndex(tmp_path / 'x.index')) == 1
    assert cli_index(library, '--index', tmp_path / 'x.index') == 0  # the default follows the index
    assert len(ruclip.ImageIndex(tmp_path / 'x.index')) == 2


def test_exact_decode_makes_an_index_of_exact_pixels(tmp_path, tiny_checkpoint):
    write_photo(tmp_path / 'a.jpg', 1200, 900, seed=1)
    assert cli_index(tmp_path / 'a.jpg', '--index', tmp_path / 'x.index', '--model', tiny_checkpoint,
                     '--exact-decode') == 0
    index = ruclip.ImageIndex(tmp_path / 'x.index')
    assert index.model['jpeg_draft'] is False and 'draft_policy' not in index.model  # as recorded before it
    exact = predictor_for(tiny_checkpoint)  # the library's default: the original's exact pixels
    assert exact.identity == ModelIdentity.from_dict(index.model)
    np.testing.assert_array_equal(index._latents().latents[0],
                                  exact.get_image_latents([str(tmp_path / 'a.jpg')])[0].numpy())


def test_an_index_filled_under_the_first_draft_policy_is_not_filled_under_this_one(tiny_checkpoint):
    drafted = predictor_for(tiny_checkpoint, jpeg_draft=True).identity
    before = {key: value for key, value in drafted.to_dict().items() if key != 'draft_policy'}
    assert ModelIdentity.from_dict(before).draft_policy == DRAFT_POLICY_1
    with pytest.raises(ValueError, match=f"draft_policy '{DRAFT_POLICY_1}' vs '{JPEG_DRAFT_POLICY}'"):
        check_same_model(dict(before, fingerprint='recorded-under-policy-1'), drafted, 'index x')


def test_draft_decoding_keeps_twice_the_models_side():
    jpeg = write_photo_bytes(1800, 1350)
    transform_side = 224
    from ruclip._batches import image_batches
    decoded = []
    transform = ImageTransform(transform_side, [0.5] * 3, [0.25] * 3)
    original = transform.resize
    transform.resize = lambda image: decoded.append(image.size) or original(image)
    list(image_batches([jpeg], transform, 1, draft=True))
    assert decoded == [(900, 675)]  # 1/4 would be 450 x 337, under 2 x 224 on the short side
    assert open_image(jpeg).size == (1800, 1350)


def write_photo_bytes(width, height) -> bytes:
    import io
    from helpers.photos import photo_like
    buffer = io.BytesIO()
    photo_like(width, height, seed=3).save(buffer, format='JPEG', quality=90)
    return buffer.getvalue()


def test_draft_latents_stay_close_to_the_exact_ones_and_rank_alike(tmp_path, checkpoint_factory):
    """On photo-like 1 MP JPEGs (a few, for the time limit; benchmarks/bench_photos.py measures 12 MP):
    each drafted latent is nearest its own exact latent, and the top-10 of image queries barely move."""
    files = [write_photo(tmp_path / f"{i}.jpg", 1200, 900, seed=100 + i) for i in range(16)]
    clip, processor = ruclip.load(str(checkpoint_factory()))
    exact = ruclip.Predictor(clip, processor, quiet=True).get_image_latents(files)
    drafted = ruclip.Predictor(clip, processor, quiet=True, jpeg_draft=True).get_image_latents(files)
    assert torch.equal((drafted @ exact.T).argmax(1), torch.arange(len(files)))
    overlaps = [len(set((exact @ exact[q]).topk(10).indices.tolist()) &
                    set((drafted @ exact[q]).topk(10).indices.tolist())) / 10 for q in range(len(files))]
    assert np.mean(overlaps) >= 0.95, overlaps
    transform = processor.image_transform  # the pixels the model sees, model-free
    pixels = [(transform(open_image(f)), transform(open_image(f, draft_size=2 * transform.size))) for f in files[:4]]
    assert min(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) for a, b in pixels) > 0.99


def test_sharded_embed_records_its_decoding_and_keeps_to_it(tmp_path, tiny_checkpoint, capsys):
    library = tmp_path / 'lib'
    library.mkdir()
    write_photo(library / 'a.jpg', 1200, 900, seed=1)
    base = ['embed', str(library), '--model', str(tiny_checkpoint), '-q', '--backend', 'torch', '--dtype', 'fp32']
    assert main(base + ['--out', str(tmp_path / 'drafted')]) == 0
    assert main(base + ['--out', str(tmp_path / 'exact'), '--exact-decode']) == 0
    for name, draft in (('drafted', True), ('exact', False)):
        manifest = json.loads((tmp_path / name / '_manifest.json').read_text())
        assert manifest['model_identity']['jpeg_draft'] is draft
    capsys.readouterr()
    assert main(base + ['--out', str(tmp_path / 'drafted'), '--exact-decode']) == 2  # not into the other's folder
    err = capsys.readouterr().err
    assert 'holds shards of another run' in err and "'jpeg_draft': True" in err and "'jpeg_draft': False" in err
