"""The fast paths give the results of the plain ones: reduced precision within its documented
tolerance, any batching and threading, paths and bytes as PIL images, trimmed texts."""
import io
import platform
import sys
import threading

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import ruclip
from helpers.images import encoded, rgb_image
from ruclip.model import LayerNorm, QuickGELU
from ruclip._batches import image_batches

CLASSES = ['кошка', 'собака', 'дом', 'машина', 'лес', 'море', 'гора', 'поезд']
COSINE_TOLERANCE = 0.999  # documented: reduced-precision latents have cosine >= 0.999 to fp32


@pytest.fixture(scope='module')
def loaded(tiny_checkpoint):
    return ruclip.load(str(tiny_checkpoint))


@pytest.fixture(scope='module')
def photos():
    return [rgb_image(64 + 9 * i, 48 + 5 * i, seed=i) for i in range(11)]


def predictor(loaded, **options):
    clip, processor = loaded
    return ruclip.Predictor(clip, processor, 'cpu', quiet=True, **options)


@pytest.mark.parametrize('arch', ['ruclip-vit-base-patch32-224', 'ruclip-vit-large-patch14-336'])
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_reduced_precision_latents_and_labels(checkpoint_factory, photos, arch, dtype):
    folder = str(checkpoint_factory(arch))
    results = {}
    for key in (torch.float32, dtype):
        clip, processor = ruclip.load(folder, dtype=key)
        assert clip.dtype == key
        p = ruclip.Predictor(clip, processor, 'cpu', quiet=True)
        text_latents = p.get_text_latents(CLASSES)
        results[key] = (text_latents, p.get_image_latents(photos), p.run(photos, text_latents))
    (text32, image32, labels32), (text, image, labels) = results[torch.float32], results[dtype]
    assert text.dtype == image.dtype == torch.float32  # the Predictor hands out fp32 latents
    assert F.cosine_similarity(text, text32).min() >= COSINE_TOLERANCE
    assert F.cosine_similarity(image, image32).min() >= COSINE_TOLERANCE
    logits32, logits = image32 @ text32.t(), image @ text.t()
    top2 = logits32.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 2 * (logits - logits32).abs().max()  # no rounding can flip these
    assert clear.float().mean() >= 0.5  # random tiny models leave some images near a tie
    assert [a for a, c in zip(labels, clear) if c] == [b for b, c in zip(labels32, clear) if c]


def test_dtype_names_and_bad_dtypes(tiny_checkpoint):
    for name, dtype in [('bf16', torch.bfloat16), ('float16', torch.float16), ('torch.float32', torch.float32),
                        (None, torch.float32)]:
        assert ruclip.load(str(tiny_checkpoint), dtype=name)[0].dtype == dtype
    for bad in ['int8', torch.int64, torch.float64, 16]:
        with pytest.raises(ValueError, match=r"Unknown dtype .*choose 'auto', one of torch.float32, torch.bfloat16"):
            ruclip.load(str(tiny_checkpoint), dtype=bad)


def test_layer_norm_mixed_kernel_equals_upcasting():
    norm = LayerNorm(48)
    with torch.no_grad():
        norm.weight.normal_(1, 0.2)
        norm.bias.normal_(0, 0.2)
    x = torch.randn(5, 7, 48) * 3 + 1
    for dtype in (torch.bfloat16, torch.float16):
        low = norm.to(dtype)
        expected = F.layer_norm(x.to(dtype).float(), (48,), low.weight.float(), low.bias.float()).to(dtype)
        got = low(x.to(dtype))
        assert got.dtype == dtype
        torch.testing.assert_close(got.float(), expected.float(), atol=0, rtol=2 ** -7)  # at most one rounding apart


def test_mlp_equals_the_literal_quick_gelu(loaded):
    clip, _ = loaded
    mlp = clip.transformer.resblocks[0].mlp
    x = torch.randn(4, 9, clip.transformer.width)
    with torch.no_grad():
        expected = mlp.c_proj(QuickGELU()(mlp.c_fc(x)))
        torch.testing.assert_close(mlp(x), expected, atol=1e-6, rtol=1e-5)


def test_patch_matmul_equals_the_convolution(loaded):
    clip, _ = loaded
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        expected = clip.visual.conv1(x).flatten(2).transpose(1, 2)  # [B, grid**2, width]
        torch.testing.assert_close(clip.visual.embed_patches(x), expected, atol=1e-5, rtol=1e-5)


def test_last_block_on_the_class_token_alone_changes_nothing(loaded):
    clip, _ = loaded
    tower = clip.visual.transformer
    x = torch.randn(3, 50, tower.width)
    with torch.no_grad():
        torch.testing.assert_close(tower.forward_batch_first(x, first_only=True), tower.forward_batch_first(x)[:, :1],
                                   atol=1e-6, rtol=1e-5)
        with pytest.raises(ValueError, match='first_only needs bidirectional attention'):
            clip.transformer.forward_batch_first(torch.randn(2, 5, clip.transformer.width), first_only=True)


def test_paths_and_bytes_give_the_latents_of_pil_images(loaded, photos, tmp_path):
    p = predictor(loaded, num_workers=2, bs=4)
    pngs, jpegs = [encoded(photo, 'PNG') for photo in photos], [encoded(photo, 'JPEG') for photo in photos]
    paths = []
    for i, blob in enumerate(jpegs):
        paths.append(tmp_path / f'{i}.jpg')
        paths[-1].write_bytes(blob)
    from_pil = p.get_image_latents(photos)
    torch.testing.assert_close(p.get_image_latents(pngs), from_pil, atol=0, rtol=0)  # PNG is lossless
    decoded = [Image.open(path) for path in paths]
    from_jpeg_pil = p.get_image_latents(decoded)
    torch.testing.assert_close(p.get_image_latents(paths), from_jpeg_pil, atol=0, rtol=0)
    torch.testing.assert_close(p.get_image_latents([str(path) for path in paths]), from_jpeg_pil, atol=0, rtol=0)
    torch.testing.assert_close(p.get_image_latents(jpegs), from_jpeg_pil, atol=0, rtol=0)
    mixed = [photos[0], pngs[1], str(paths[2])]
    # a batch of 3 against rows of a batch of 4: equal up to float rounding (GEMM kernels round per batch size)
    torch.testing.assert_close(p.get_image_latents(mixed)[:2], from_pil[:2], atol=1e-6, rtol=1e-5)


def test_results_do_not_depend_on_batching_or_threads(loaded, photos):
    reference = predictor(loaded, bs=1, num_workers=0).get_image_latents(photos)
    for options in [dict(bs=3, num_workers=4), dict(bs=5, num_workers=1), dict()]:
        p = predictor(loaded, **options)
        torch.testing.assert_close(p.get_image_latents(iter(photos)), reference, atol=1e-6, rtol=0)
        text_latents = p.get_text_latents(CLASSES)
        assert p.run(photos, text_latents) == (reference @ text_latents.t()).argmax(1).tolist()


def test_worker_batches_keep_the_input_order(loaded, photos):
    transform = loaded[1].image_transform
    images = photos * 3  # 33 images, batches of 4, six threads racing
    expected = torch.stack([transform(image) for image in images])
    batches = list(image_batches(images, transform, batch_size=4, num_workers=6))
    assert [len(b) for b in batches] == [4] * 8 + [1]
    assert torch.equal(torch.cat(batches), expected)


def test_an_unreadable_image_is_named(loaded, photos, tmp_path):
    p = predictor(loaded, num_workers=2, bs=2)
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not a jpeg at all')
    with pytest.raises(ValueError, match=r'image #3: cannot read image .*broken\.jpg'):
        p.get_image_latents([photos[0], photos[1], photos[2], broken, photos[4]])
    with pytest.raises(FileNotFoundError, match=r'image #1: image file not found: .*missing\.png'):
        p.get_image_latents(iter([photos[0], str(tmp_path / 'missing.png')]))
    with pytest.raises(ValueError, match=r'image #2: cannot read image <5 bytes>'):
        p.get_image_latents([photos[0], photos[1], b'junk!'])
    with pytest.raises(TypeError, match=r'image #1 \(int\): an image must be a PIL.Image, a file path or bytes'):
        p.get_image_latents([photos[0], 42])
    with pytest.raises(ValueError, match=r'image #1 \(PIL image I;16 5x5\): cannot convert a I;16 image'):
        p.get_image_latents([photos[0], _unconvertible()])
    with pytest.raises(TypeError, match='images must be a list'):
        p.get_image_latents(str(broken))
    assert not _worker_threads()  # the pool is gone after an error


def test_stopping_early_leaves_no_threads(loaded, photos):
    batches = image_batches(photos * 4, loaded[1].image_transform, batch_size=2, num_workers=3)
    first = next(batches)
    assert first.shape == (2, 3, 224, 224)
    batches.close()
    assert not _worker_threads()


def _unconvertible():
    image = Image.new('I;16', (5, 5))
    image.convert = lambda mode: (_ for _ in ()).throw(ValueError('conversion not supported'))
    return image


def _worker_threads():
    return [t for t in threading.enumerate() if t.name.startswith('ruclip-images')]


def test_text_batches_by_length_equal_one_batch(loaded, monkeypatch):
    labels = CLASSES + ['очень ' * 30 + 'длинное название класса', 'я', 'кот на крыше дома у моря']
    expected = predictor(loaded).get_text_latents(labels)
    monkeypatch.setattr(ruclip.predictor, 'CPU_ACTIVATION_BYTES', 4 * 32 * 4 * 40)  # 40 tokens per batch
    got = predictor(loaded).get_text_latents(labels)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_padding_to_any_length_past_the_longest_text_changes_nothing(loaded):
    clip, processor = loaded
    tokens = [processor.tokenize(t) for t in ['кошка', 'фото, на котором изображено кошка', '']]
    longest = max(map(len, tokens))
    with torch.no_grad():
        full = clip.encode_text(processor.pad(tokens))  # [3, 77]
        for length in (longest, longest + 1, 40):
            torch.testing.assert_close(clip.encode_text(processor.pad(tokens, length=length)), full, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=f'cannot pad {longest} tokens to length {longest - 1}'):
        processor.pad(tokens, length=longest - 1)


def test_tokenizer_work_is_cached(loaded, monkeypatch):
    _, processor = loaded
    text = 'фото, на котором изображено что-то новое'
    first = processor.tokenize(text)
    monkeypatch.setattr(processor.tokenizer, 'encode', lambda text: pytest.fail('the cache was not used'))
    assert processor.tokenize(text) == first
    first.append(99)  # callers get their own list
    assert processor.tokenize(text) != first


def test_jpeg_draft_is_opt_in_and_close(loaded):
    big = rgb_image(1600, 1200, seed=5)
    jpeg, png = encoded(big, 'JPEG'), encoded(big, 'PNG')
    exact, drafted = predictor(loaded), predictor(loaded, jpeg_draft=True)
    full, draft = exact.get_image_latents([jpeg]), drafted.get_image_latents([jpeg])
    assert torch.equal(full, exact.get_image_latents([Image.open(io.BytesIO(jpeg))]))
    assert not torch.equal(full, draft)  # scaled while decoding: other pixels
    assert F.cosine_similarity(full, draft).min() > 0.99
    torch.testing.assert_close(drafted.get_image_latents([png, big]), exact.get_image_latents([png, big]),
                               atol=0, rtol=0)  # PNG files and decoded images are untouched


def test_jpeg_draft_scales_by_four_at_most():
    from ruclip.image import open_image
    jpeg = encoded(rgb_image(1800, 1800, seed=6), 'JPEG')
    assert open_image(jpeg, draft_size=224).size == (450, 450)  # 1800 // 224 = 8 would allow 1/8
    assert open_image(jpeg, draft_size=384).size == (450, 450)
    assert open_image(jpeg, draft_size=600).size == (900, 900)
    assert open_image(jpeg).size == (1800, 1800)


def test_new_options_are_checked(loaded, tiny_checkpoint, checkpoint_factory):
    for options, error, message in [
        (dict(bs=0), ValueError, r'batch_size \(bs\) must be a positive integer, got 0'),
        (dict(bs=2.0), ValueError, r'batch_size \(bs\) must be a positive integer, got 2.0'),
        (dict(num_workers=-1), ValueError, 'num_workers must be an integer >= 0, got -1'),
        (dict(num_workers=True), ValueError, 'num_workers must be an integer >= 0, got True'),
        (dict(jpeg_draft='yes'), TypeError, "jpeg_draft must be True or False, got 'yes'"),
        (dict(compile=1), TypeError, 'compile must be True or False, got 1'),
        (dict(tune_malloc=None), TypeError, 'tune_malloc must be True or False, got None'),
    ]:
        with pytest.raises(error, match=message):
            predictor(loaded, **options)
    clip, _ = loaded
    other = ruclip.RuCLIPProcessor.from_pretrained(checkpoint_factory('ruclip-vit-base-patch32-384'))
    with pytest.raises(ValueError, match='the processor makes 384 px images but the model takes 224 px'):
        ruclip.Predictor(clip, other, 'cpu')


def test_batch_size_is_bs_or_picked_for_the_device(loaded, checkpoint_factory):
    assert predictor(loaded, bs=3).batch_size == 3  # exactly as asked, as the original
    clip, processor = ruclip.load(str(checkpoint_factory('ruclip-vit-base-patch32-384')), dtype=torch.bfloat16)
    picked = ruclip.Predictor(clip, processor, 'cpu').batch_size
    rows = picked * 145  # 12 x 12 patches + cls
    widest = rows * 4 * clip.visual.transformer.width * 2  # [rows, 4 * width] in bf16
    assert widest <= ruclip.predictor.CPU_ACTIVATION_BYTES < widest + 145 * 4 * clip.visual.transformer.width * 2
    assert ruclip.Predictor(clip.float(), processor, 'cpu').batch_size in (picked // 2, picked // 2 + 1)


def test_malloc_is_tuned_only_when_asked(loaded, monkeypatch):
    calls = []
    monkeypatch.setattr(ruclip.predictor, 'keep_freed_memory', lambda: calls.append(1))
    first = predictor(loaded)
    assert calls == []  # a library leaves its host process's allocator alone by default
    predictor(loaded, tune_malloc=True)
    assert calls == [1]
    assert predictor(loaded, tune_malloc=True).batch_size == first.batch_size  # the batch does not depend on it


@pytest.mark.skipif(not sys.platform.startswith('linux') or platform.libc_ver()[0] != 'glibc', reason='glibc malloc')
def test_keep_freed_memory_sets_glibc_thresholds_once(monkeypatch):
    from ruclip import _malloc as allocator
    for name in ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'GLIBC_TUNABLES', 'LD_PRELOAD'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(allocator, '_done', False)
    monkeypatch.setenv('MALLOC_TRIM_THRESHOLD_', '1000000')
    assert allocator.keep_freed_memory() is False  # the user's own setting wins
    monkeypatch.delenv('MALLOC_TRIM_THRESHOLD_')
    monkeypatch.setenv('LD_PRELOAD', '/usr/lib/libjemalloc.so.2')
    assert allocator.keep_freed_memory() is False
    monkeypatch.delenv('LD_PRELOAD')
    assert allocator.keep_freed_memory() is True
    assert allocator.keep_freed_memory() is True


def test_compiled_tower_gives_the_same_latents(loaded, photos, monkeypatch):
    """The Predictor's compile path: dynamo captures the tower, every batch padded to one shape and cut back.
    Inductor's backend (a C++ build taking a minute or more, longer on small CPUs) is torch's to test:
    aot_eager runs the same captured graph."""
    compile_ = torch.compile
    monkeypatch.setattr(torch, 'compile', lambda model, **options: compile_(model, backend='aot_eager', **options))
    eager = predictor(loaded, bs=4).get_image_latents(photos)
    compiled = predictor(loaded, bs=4, compile=True)
    torch.testing.assert_close(compiled.get_image_latents(photos), eager, atol=1e-5, rtol=0)  # 11 = 4 + 4 + 3 padded
