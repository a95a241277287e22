"""transformers export: CLIPModel embeddings within 1e-5 of ours, the tokenizer's ids exactly ours."""
import pytest
import torch

from ruclip import load
from ruclip._outputs import EXPORT_RECORD
from ruclip.export.hf import export_hf, to_transformers
from ruclip.export.hf_tokenizer import build_tokenizer
from helpers.images import SIZES, rgb_image
from helpers.texts import varied_texts

transformers = pytest.importorskip('transformers')
pytest.importorskip('tokenizers')

ATOL = 1e-5
LABELS = ['кошка', 'собака', 'дом', 'красный цветок', 'синее море на фото']


def embeddings(output) -> torch.Tensor:
    """get_*_features returns the tensor in transformers 4, a BaseModelOutputWithPooling in 5."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@pytest.fixture(scope='module')
def hf_folder(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp('hf')
    paths = export_hf(tiny_checkpoint, out)
    assert paths == sorted(str(path) for path in out.iterdir() if path.name != EXPORT_RECORD)
    assert str(out / 'config.json') in paths
    return out


@pytest.fixture(scope='module')
def hf_model(hf_folder):
    return transformers.CLIPModel.from_pretrained(hf_folder).eval()


@pytest.fixture(scope='module')
def hf_tokenizer(hf_folder):
    return transformers.AutoTokenizer.from_pretrained(hf_folder)


@pytest.fixture(scope='module')
def loaded(tiny_checkpoint):
    return load(tiny_checkpoint)


def test_text_embeddings_match(hf_model, hf_tokenizer, loaded):
    clip, processor = loaded
    texts = varied_texts(16, seed=11) + ['большой красный дом стоит на улице города ' * 20]
    input_ids = processor(text=texts)['input_ids']
    lowered = [t.lower() for t in texts]
    dynamic = hf_tokenizer(lowered, padding=True, truncation=True, return_tensors='pt')
    fixed = hf_tokenizer(lowered, padding='max_length', max_length=77, truncation=True, return_tensors='pt')
    with torch.inference_mode():
        ours = clip.encode_text(input_ids)
        for inputs in ({'input_ids': input_ids}, dynamic, fixed):
            theirs = embeddings(hf_model.get_text_features(**inputs))
            assert (theirs - ours).abs().max() < ATOL


def test_image_embeddings_match(hf_model, loaded):
    clip, processor = loaded
    pixel_values = processor(images=[rgb_image(*size, seed=k) for k, size in enumerate(SIZES)])['pixel_values']
    with torch.inference_mode():
        theirs = embeddings(hf_model.get_image_features(pixel_values=pixel_values))
        assert (theirs - clip.encode_image(pixel_values)).abs().max() < ATOL
        logits_per_image, _ = clip(processor(text=LABELS)['input_ids'], pixel_values)
        output = hf_model(input_ids=processor(text=LABELS)['input_ids'], pixel_values=pixel_values)
        assert (output.logits_per_image - logits_per_image).abs().max() < 1e-4


def test_tokenizer_gives_our_ids(hf_tokenizer, loaded):
    _, processor = loaded
    texts = varied_texts(3000, seed=12) + ['', ' \t▁ ', '<UNK> <PAD> <BOS> <EOS> кот', '<unk>']
    expected = processor(text=texts)['input_ids']
    for batch in ([t.lower() for t in texts], texts):  # lowered by str.lower(), and raw for the normalizer
        ids = hf_tokenizer(batch, padding='max_length', max_length=77, truncation=True, return_tensors='pt')
        mismatched = [texts[i] for i in (ids['input_ids'] != expected).any(1).nonzero().flatten().tolist()]
        assert not mismatched
        assert torch.equal(ids['attention_mask'].bool(), expected != 0)


def test_tokenizer_decodes_as_ours(hf_tokenizer, loaded):
    _, processor = loaded
    ids = processor(text=['Большой красный дом, стоит на улице!'])['input_ids'][0]
    assert hf_tokenizer.decode(ids, skip_special_tokens=True) == processor.decode_text(ids)


def test_processor_and_config_load_with_auto_classes(hf_folder):
    processor = transformers.AutoProcessor.from_pretrained(hf_folder)
    config = transformers.AutoConfig.from_pretrained(hf_folder)
    assert config.text_config.eos_token_id == 3 and config.text_config.hidden_act == 'quick_gelu'
    assert processor.tokenizer.model_max_length == 77
    assert processor.image_processor.crop_size == {'height': 224, 'width': 224}


def test_pipeline_probabilities_match(hf_folder, loaded):
    """The pipeline's probabilities are ours on the pixels its CLIPImageProcessor makes (within 1e-4), and
    on ours for square images. CLIPImageProcessor resizes the shortest side and then crops the centre;
    RuCLIP crops the largest centred square and then resizes. For other shapes the two sample grids are
    shifted by up to a pixel, which on these noisy test images moved probabilities by up to 2.4e-3.
    Pictures with a side under 8 pixels are left out: transformers 4's image processor misreads them."""
    clip, processor = loaded
    pipe = transformers.pipeline('zero-shot-image-classification', model=hf_folder)
    with torch.inference_mode():
        text_latents = clip.encode_text(processor(text=LABELS)['input_ids'], normalize=True)

    def probabilities(pixel_values):
        with torch.inference_mode():
            image_latents = clip.encode_image(pixel_values, normalize=True)
            return (clip.logit_scale.exp() * image_latents @ text_latents.t()).softmax(-1)[0]

    for k, (width, height) in enumerate(SIZES):
        if min(width, height) < 8:
            continue
        image = rgb_image(width, height, seed=k)
        result = pipe(image, candidate_labels=LABELS, hypothesis_template='{}')
        theirs = torch.tensor([next(r['score'] for r in result if r['label'] == label) for label in LABELS])
        assert (theirs - probabilities(pipe.image_processor(images=[image], return_tensors='pt')['pixel_values'])
                ).abs().max() < 1e-4
        ours = probabilities(processor(images=[image])['pixel_values'])
        assert (theirs - ours).abs().max() < (1e-4 if width == height else 3e-2)


def test_export_of_a_loaded_model_of_another_architecture(checkpoint_factory):
    clip, processor = load(checkpoint_factory('ruclip-vit-base-patch16-384', seed=2))
    hf_model, hf_processor = to_transformers(clip, processor)
    image = rgb_image(384, 384, seed=3)
    inputs = hf_processor(text=LABELS, images=image, padding=True, return_tensors='pt')
    with torch.inference_mode():
        assert (embeddings(hf_model.get_image_features(pixel_values=inputs['pixel_values']))
                - clip.encode_image(processor(images=[image])['pixel_values'])).abs().max() < ATOL
        assert (embeddings(hf_model.get_text_features(input_ids=inputs['input_ids'], attention_mask=inputs['attention_mask'])) - clip.encode_text(processor(text=LABELS)['input_ids'])).abs().max() < ATOL


def test_export_of_a_loaded_model_needs_its_processor(loaded, tmp_path):
    clip, _ = loaded
    with pytest.raises(TypeError, match='needs the RuCLIPProcessor'):
        export_hf(clip, tmp_path)


def test_export_finds_a_model_in_a_given_cache_and_refuses_its_own_folder(hub_cache, tmp_path, tiny_checkpoint):
    out = tmp_path / 'hf'
    export_hf('ruclip-vit-base-patch32-224', out, cache_dir=str(hub_cache), local_files_only=True)
    assert transformers.CLIPModel.from_pretrained(out).config.projection_dim == 24
    with pytest.raises(ValueError, match='is not empty'):
        export_hf(tiny_checkpoint, out)
    with pytest.raises(ValueError, match='is the checkpoint folder being exported'):
        export_hf(tiny_checkpoint, tiny_checkpoint, overwrite=True)


def write_bpe_model(path, chars, rules, specials='1 0 2 3'):
    """A hand-made youtokentome bpe.model: chars {char: id}, rules [(x, y, z)], 'unk pad bos eos'."""
    lines = [f'{len(chars)} {len(rules)}'] + [f'{ord(c)} {i}' for c, i in chars.items()]
    lines += [f'{x} {y} {z}' for x, y, z in rules] + [specials]
    path.write_text('\n'.join(lines) + '\n')
    return path


def test_refuses_two_ids_with_one_string(tmp_path):
    chars = {'▁': 4, 'a': 5, 'b': 6, 'c': 7}
    rules = [(5, 6, 8), (8, 7, 9), (6, 7, 10), (5, 10, 11)]  # 'ab'+'c' and 'a'+'bc' both spell 'abc'
    with pytest.raises(ValueError, match=r"'abc' ids \[9, 11\]"):
        build_tokenizer(write_bpe_model(tmp_path / 'bpe.model', chars, rules))


def test_refuses_a_real_token_at_id_0(tmp_path):
    chars = {'▁': 0, 'a': 4, 'b': 5}
    with pytest.raises(ValueError, match="id 0 is the real token '▁'"):
        build_tokenizer(write_bpe_model(tmp_path / 'bpe.model', chars, [(4, 5, 6)], specials='1 -1 2 3'))


def test_lowercase_normalizer_refuses_characters_it_lowercases_unlike_python(tmp_path):
    # U+A7CB is a capital letter newer than Python 3.11's Unicode tables; tokenizers lowercases it to 'ɤ'
    chars = {'▁': 4, 'a': 5, '\u0264': 6}
    path = write_bpe_model(tmp_path / 'bpe.model', chars, [])
    from ruclip.export.hf_tokenizer import _lowercase_differences
    if '\ua7cb' not in _lowercase_differences():
        pytest.skip('this Python and tokenizers lowercase U+A7CB alike')
    with pytest.raises(ValueError, match='U\\+A7CB.*lowercase=False'):
        build_tokenizer(path)
    tokenizer = build_tokenizer(path, lowercase=False)
    assert tokenizer('a\u0264 A')['input_ids'] == [2, 4, 5, 6, 4, 1, 3]
