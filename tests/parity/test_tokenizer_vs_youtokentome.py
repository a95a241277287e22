"""ruclip.tokenizer.BPETokenizer against youtokentome 1.0.6 on models trained here."""
import re

import numpy as np
import pytest
import torch

from ruclip.tokenizer import BPETokenizer

from helpers.texts import EDGE_CASES, NON_SEPARATORS, SEPARATORS, train_bpe, varied_texts

yttm = pytest.importorskip('youtokentome')  # the [parity] extra

RUCLIP_IGNORE_IDS = [3, 2, 1, 0]
# name -> (vocab_size, train kwargs, number of varied texts to compare)
MODELS = {
    "ruclip_like": (1000, {}, 20000),
    "tiny": (150, {}, 5000),
    "large": (5000, {}, 5000),
    "other_specials": (800, dict(pad_id=7, unk_id=0, bos_id=3, eos_id=1), 5000),
    # Without pad/eos '▁' gets id 0, which yttm treats specially (see test_space_id_zero_quirk).
    "missing_specials": (800, dict(pad_id=-1, unk_id=5, bos_id=2, eos_id=-1), 5000),
}
ALL_TEXTS = EDGE_CASES + varied_texts(20000, seed=0)


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bpe")
    return {name: train_bpe(tmp, vocab_size, **kw) for name, (vocab_size, kw, _) in MODELS.items()}


@pytest.fixture(scope="module")
def pairs(model_paths):
    """name -> (our tokenizer, yttm.BPE) for the same file."""
    return {name: (BPETokenizer.from_file(p), yttm.BPE(p)) for name, p in model_paths.items()}


@pytest.fixture(scope="module")
def ruclip_like(pairs):
    return pairs["ruclip_like"]


def yttm_ids(bpe, texts):
    return bpe.encode(list(texts), output_type=yttm.OutputType.ID, dropout_prob=0.0)


def assert_same_ids(tok, bpe, texts):
    expected = yttm_ids(bpe, texts)
    for text, want in zip(texts, expected):
        got = tok.encode(text)
        assert got == want, f"first mismatch on text {text[:300]!r}:\n yttm={want[:50]}\n ours={got[:50]}"
    return expected


@pytest.mark.parametrize("name", MODELS)
def test_ids_and_decode_match_yttm(pairs, name):
    tok, bpe = pairs[name]
    texts = ALL_TEXTS[: len(EDGE_CASES) + MODELS[name][2]]
    ids = assert_same_ids(tok, bpe, texts)
    assert sum(map(len, ids)) > 10 * len(texts)  # the comparison is not vacuous

    specials = [i for i in (tok.unk_id, tok.pad_id, tok.bos_id, tok.eos_id) if i != -1]
    for ignore in (specials, None):
        want = bpe.decode(ids, ignore_ids=ignore)
        for text, seq, w in zip(texts, ids, want):
            got = tok.decode(seq, ignore_ids=ignore or ())
            assert got == w, f"decode mismatch for text {text[:300]!r}, ignore_ids={ignore}: {w[:100]!r} != {got[:100]!r}"


def test_vocab_and_file_reading(pairs, model_paths):
    for name, (tok, bpe) in pairs.items():
        vocab = tok.vocab()
        assert vocab == bpe.vocab() and tok.vocab_size == bpe.vocab_size() == len(vocab)
        assert [tok.id_to_subword(i) for i in range(0, tok.vocab_size, 7)] == [
            bpe.id_to_subword(i) for i in range(0, tok.vocab_size, 7)]
        lines = open(model_paths[name]).read().split("\n")
        n_chars, n_rules = map(int, lines[0].split())
        assert tok.merges == [tuple(map(int, l.split())) for l in lines[1 + n_chars:1 + n_chars + n_rules]]
        assert all(vocab[z] == vocab[x] + vocab[y] for x, y, z in tok.merges)
        unk, pad, bos, eos = map(int, lines[1 + n_chars + n_rules].split())
        assert (tok.unk_id, tok.pad_id, tok.bos_id, tok.eos_id) == (unk, pad, bos, eos)
    tok = pairs["ruclip_like"][0]
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert tok.vocab()[:4] == ["<PAD>", "<UNK>", "<BOS>", "<EOS>"]
    tok = pairs["other_specials"][0]
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (7, 0, 3, 1)
    assert [tok.vocab()[i] for i in (7, 0, 3, 1)] == ["<PAD>", "<UNK>", "<BOS>", "<EOS>"]


def test_separators_split_words(ruclip_like):
    tok, bpe = ruclip_like
    cat, house = tok.encode("кот"), tok.encode("дом")
    for sep in SEPARATORS:
        for text in (f"кот{sep}дом", f"{sep}кот{sep}{sep}дом{sep}"):
            assert tok.encode(text) == cat + house == yttm_ids(bpe, [text])[0], repr(text)
    assert_same_ids(tok, bpe, [f"кот{c}дом" for c in SEPARATORS])


def test_other_whitespace_is_part_of_words(ruclip_like):
    tok, bpe = ruclip_like
    space_id = tok.vocab().index("\u2581")
    for c in NON_SEPARATORS + ["\u2000", "\u200a", "\u0085"]:
        ids = tok.encode(f"кот{c}дом")
        assert ids == yttm_ids(bpe, [f"кот{c}дом"])[0]
        assert tok.unk_id in ids and sum(tok.vocab()[i].startswith("\u2581") for i in ids) == 1, repr(c)
        assert tok.encode(c) == [space_id, tok.unk_id]
    assert "кот\u2028дом".split() == ["кот", "дом"]  # ... unlike str.split()


def test_unknown_runs_become_one_unk(ruclip_like):
    tok, bpe = ruclip_like
    unk, space_id = tok.unk_id, tok.vocab().index("\u2581")
    assert tok.encode("😀😀中ё") == [space_id, unk] == yttm_ids(bpe, ["😀😀中ё"])[0]
    for text in ("к😀😀中т", "ёлка", "всё", "к😀о😀т", "😀кот😀"):
        ids = tok.encode(text)
        assert ids == yttm_ids(bpe, [text])[0]
        assert ids.count(unk) == len(re.findall("[😀中ё]+", text)), text
    # An unk never merges: the known parts on either side encode as if they stood alone.
    ids = tok.encode("кот😀дом")
    assert ids == yttm_ids(bpe, ["кот😀дом"])[0] and ids.count(unk) == 1
    k = ids.index(unk)
    assert ids[:k] == tok.encode("кот") and "".join(tok.vocab()[i] for i in ids[k + 1:]) == "дом"


def test_empty_and_whitespace_only(ruclip_like):
    tok, bpe = ruclip_like
    for text in ["", " ", "\t\n\v\f\r ", "\u2581", " \u2581 \u2581\u2581"]:
        assert tok.encode(text) == [] == yttm_ids(bpe, [text])[0]
    assert tok.decode([]) == "" and tok.decode(np.array([], dtype=np.int64)) == ""


def test_very_long_words(ruclip_like):
    tok, bpe = ruclip_like
    texts = ["а" * 50000, "кошка" * 10000, "".join(varied_texts(200, seed=5)).replace(" ", "")]
    ids = assert_same_ids(tok, bpe, texts)
    assert all(len(i) > 1000 for i in ids)


def test_space_id_zero_quirk(pairs):
    # yttm starts a word's output at the first non-zero id, so a leading bare '▁' with id 0 is lost.
    tok, bpe = pairs["missing_specials"]
    assert tok.vocab()[0] == "\u2581"
    assert tok.encode("😀") == [tok.unk_id] == yttm_ids(bpe, ["😀"])[0]


def test_round_trip(ruclip_like):
    tok, bpe = ruclip_like
    alphabet = {t for t in tok.vocab() if len(t) == 1}
    unknown = "[^" + re.escape("".join(sorted(alphabet))) + "]+"
    for text in ALL_TEXTS[:5000]:
        words = re.findall("[^\t\n\v\f\r \u2581]+", text)
        ids = tok.encode(text)
        assert tok.decode(ids) == " ".join(re.sub(unknown, "<UNK>", w) for w in words)
        assert tok.decode(ids, ignore_ids=RUCLIP_IGNORE_IDS) == " ".join(re.sub(unknown, "", w) for w in words)


def test_decode_accepts_arrays_and_tensors(ruclip_like):
    tok, _ = ruclip_like
    text = "кошка сидит на окне 123"
    ids = tok.encode(text)
    padded = [tok.bos_id] + ids + [tok.eos_id] + [tok.pad_id] * 5
    want = tok.decode(ids)
    assert want == text
    for seq in (padded, np.array(padded), torch.tensor(padded), tuple(padded), iter(padded)):
        assert tok.decode(seq, ignore_ids=RUCLIP_IGNORE_IDS) == want
    assert tok.decode(torch.tensor(padded), ignore_ids=torch.tensor(RUCLIP_IGNORE_IDS)) == want
    assert tok.decode([tok.bos_id, *ids]).startswith("<BOS>")


def test_cache_is_bounded_and_transparent(ruclip_like):
    tok, bpe = ruclip_like
    tok._cache_size = 50
    try:
        texts = varied_texts(300, seed=3)
        assert_same_ids(tok, bpe, texts)
        assert_same_ids(tok, bpe, texts)
        assert len(tok._cache) <= 50
    finally:
        tok._cache_size = 100_000


# ---------------------------------------------------------------- errors

def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "bpe.model"
    with pytest.raises(FileNotFoundError, match=r"bpe\.model") as err:
        BPETokenizer.from_file(path)
    assert str(path) in str(err.value) and "expected" in str(err.value)


def _corrupt(model_paths, tmp_path, edit):
    lines = open(model_paths["tiny"]).read().split("\n")
    path = tmp_path / "bpe.model"
    path.write_text(edit(lines))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda l: "", "empty"),
    (lambda l: "\n".join(l[:10]), r"expected \d+ char lines, found 9"),
    (lambda l: "\n".join(l[:-30]), r"expected \d+ rule lines, found \d+"),
    (lambda l: "\n".join(l[:-2]), "unk pad bos eos"),
    (lambda l: "\n".join(l + ["1 2 3"]), "unexpected line"),
    (lambda l: "\n".join(["abc def"] + l[1:]), "line 1: expected 2 integers"),
    (lambda l: "\n".join(l[:5] + ["1076 x"] + l[6:]), "line 6: expected 2 integers"),
    (lambda l: "\n".join(l[:5] + ["1076"] + l[6:]), "line 6: expected 2 integers"),
    (lambda l: "\n".join(l[:-3] + ["1 2"] + l[-2:]), "expected 3 integers"),
    (lambda l: "\n".join(l[:-2] + ["1 0 2.5 3"]), "expected 4 integers"),
    (lambda l: "\n".join(l[:-2] + ["1 0 2 1"]), "ids"),
    (lambda l: "\n".join([l[0]] + [l[1]] * 2 + l[3:]), "duplicated"),
    (lambda l: "\n".join(l[:-3] + ["99999 5 140"] + l[-2:]), "rule"),
])
def test_corrupt_files(model_paths, tmp_path, edit, message):
    path = _corrupt(model_paths, tmp_path, edit)
    with pytest.raises(ValueError, match=message) as err:
        BPETokenizer.from_file(path)
    assert str(path) in str(err.value)


def test_model_without_space_char(model_paths, tmp_path):
    path = _corrupt(model_paths, tmp_path, lambda l: "\n".join(x.replace("9601 ", "9602 ") for x in l))
    with pytest.raises(ValueError, match="U\\+2581"):
        BPETokenizer.from_file(path)


def test_decode_out_of_range(ruclip_like):
    tok, bpe = ruclip_like
    for bad in (tok.vocab_size, -1, 10**9):
        with pytest.raises(ValueError, match=rf"{bad}.*vocab_size {tok.vocab_size}"):
            tok.decode([5, bad])
        with pytest.raises(ValueError):
            bpe.decode([[5, bad]])
        # like yttm, an ignored id is skipped before any range check
        assert tok.decode([5, bad], ignore_ids=[bad]) == bpe.decode([[5, bad]], ignore_ids=[bad])[0]
    with pytest.raises(ValueError, match=str(tok.vocab_size)):
        tok.id_to_subword(tok.vocab_size)


@pytest.mark.parametrize("value", [b"bytes", None, 42, {"set"}])
def test_encode_requires_str(ruclip_like, value):
    with pytest.raises(TypeError, match=type(value).__name__):
        ruclip_like[0].encode(value)


def test_youtokentome_calls_give_youtokentomes_results(ruclip_like):
    tok, bpe = ruclip_like
    texts = ["кошка сидит на окне", "", "дом 😀"]
    for bos, eos, reverse in ((False, False, False), (True, True, False), (True, False, True)):
        assert tok.encode(texts, output_type=yttm.OutputType.ID, bos=bos, eos=eos, reverse=reverse) == \
            bpe.encode(texts, output_type=yttm.OutputType.ID, bos=bos, eos=eos, reverse=reverse)
    rows = bpe.encode(texts, output_type=yttm.OutputType.ID, bos=True)
    assert tok.decode(rows, ignore_ids=[tok.bos_id]) == bpe.decode(rows, ignore_ids=[tok.bos_id])
    assert tok.decode(np.array(rows[:1])) == bpe.decode(rows[:1])
    for subword in ("▁кот", "<BOS>", "no such token"):
        assert tok.subword_to_id(subword) == bpe.subword_to_id(subword)
    assert tok.vocab_size == bpe.vocab_size()
    with pytest.raises(ValueError, match="dropout_prob must be 0"):
        tok.encode(texts, dropout_prob=0.1)
    with pytest.raises(ValueError, match="output_type must be ID"):
        tok.encode(texts, output_type=yttm.OutputType.SUBWORD)
