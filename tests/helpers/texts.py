"""Deterministic text generators for tests: a Russian-ish BPE training corpus and a
large varied set of texts full of tokenizer edge cases.

``train_bpe`` trains a small YouTokenToMe model on ``training_corpus()`` (needs youtokentome).
"""
from __future__ import annotations

import functools
import os
import random

WORDS = (
    "я ты он она оно мы вы они это тот этот весь сам свой кто что где когда как почему "
    "и а но или да нет не ни же ли бы в на с со к по за из от до для без под над при про "
    "кошка собака кот пёс дом город улица машина поезд самолёт море река лес поле небо солнце "
    "человек мужчина женщина ребёнок девочка мальчик друг семья работа школа книга стол окно "
    "дверь вода еда хлеб молоко чай кофе яблоко цветок дерево трава гора камень снег дождь "
    "красный синий зелёный жёлтый белый чёрный большой маленький новый старый хороший плохой "
    "быстрый медленный красивый весёлый грустный тёплый холодный высокий низкий длинный "
    "идёт бежит сидит стоит лежит смотрит видит играет читает пишет говорит думает любит "
    "фотография изображение картинка рисунок портрет пейзаж животное птица рыба лошадь "
    "объявление подъезд съёмка въезд разъезд"
).split()
SYLLABLES = (
    "ба ва га да жа за ка ла ма на па ра са та фа ха ца ча ша ще "
    "бо во го до ко ло мо но по ро со то ни ми ли ки ти ри си ди "
    "ре ле не ме те се ве де бе ку лу му ну ру су ту ть ль нь сь ый ий ая ое ые "
    "ст пр тр кр гр бр ов ев ин ан ен он ом ам ем ых их ого его ому ему"
).split()
LATIN = "photo of a cat dog the and with image ruclip clip model gpu 4k hd vs ok".split()
PUNCT = list(".,!?;:-—()\"'«»…/%+=#@&*")
# Separators for youtokentome: C isspace() in the ASCII range, plus U+2581.
SEPARATORS = ["\t", "\n", "\v", "\f", "\r", " ", "\u2581"]
# Whitespace-like characters that are NOT separators (ordinary word characters).
NON_SEPARATORS = ["\xa0", "\u3000", "\u2028", "\u2029", "\x1c", "\x1d", "\x1e", "\x1f",
                  "\x85", "\u2002", "\u2009", "\u200b", "\u202f", "\ufeff", "\x00"]
# Characters that training_corpus() never contains, hence unknown to the models.
UNKNOWN = ["😀", "🐱", "👍🏽", "🇷🇺", "中", "文", "α", "Ω", "ع", "ё", "Ё", "Ъ", "Ї", "\u0301",
           "\u0306", "\u200d", "€", "™", "\U0010fffd", "\x07", "\x7f", "ß", "ñ"]
# Combining marks appear after known letters too (e.g. decomposed 'й' = 'и' + U+0306).
COMBINING = ["\u0301", "\u0306", "\u0308"]


# Hand-picked cases; a model trained on training_corpus() knows Cyrillic (no 'ё'), Latin, digits.
EDGE_CASES = [
    "", " ", "\t\n\v\f\r ", "\u2581", "\u2581\u2581 \u2581", "кот", " кот", "кот ", "  кот  дом  ",
    "кот\u2581дом", "\u2581кот", "кот\u2581", "к\u2581о\u2581т",
    *(f"кот{c}дом" for c in SEPARATORS + NON_SEPARATORS), "\xa0", "\u3000\u3000", "\x1c\x1d\x1e\x1f",
    "😀", "😀😀中文", "к😀т", "к😀😀中т", "😀кот😀", "кот😀 😀дом", "к😀о😀т", "ё", "ёлка", "ЁЛКА", "всё",
    "и\u0306", "кот\u0301", "\u0301", "👍🏽", "🇷🇺", "👨\u200d👩\u200d👧",
    "КОТ", "Кот", "кОт", "123", "3.14", "2024-01-01", "photo of a cat", "HELLO world",
    "а" * 2, "а" * 3, "а" * 7, "а" * 160,
    "а" * 10000, "ха" * 5000, "кот" * 3000, "собака " * 2000, "😀" * 1000,
    "".join(WORDS) * 20, " ".join(WORDS), "\x00", "a\x00b", "\x7f", "\U0010ffff", "\ufffd",
    "кот!!!", "«кот»", "кот-дом", "(кот)", "...", "—", "кот,дом.собака",
]


def _make_word(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(WORDS)
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 5)))


def _sentence(rng: random.Random, n_words: int) -> str:
    words = [_make_word(rng) for _ in range(n_words)]
    for k in range(len(words)):
        if rng.random() < 0.15:
            words[k] += rng.choice(PUNCT)
    return " ".join(words)


@functools.lru_cache(maxsize=None)
def training_corpus(n_lines: int = 6000, seed: int = 1234) -> str:
    """Russian-ish text to train small BPE models on; none of ``UNKNOWN`` occurs in it."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        line = _sentence(rng, rng.randint(3, 15))
        if rng.random() < 0.5:
            line = line[:1].upper() + line[1:]
        if rng.random() < 0.2:
            line += " " + " ".join(rng.choice(LATIN) for _ in range(rng.randint(1, 3)))
        if rng.random() < 0.2:
            line += f" {rng.randint(0, 10 ** rng.randint(1, 6))}"
        lines.append(line.replace("ё", "е").replace("Ъ", "ъ"))
    return "\n".join(lines) + "\n"


def _case(rng: random.Random, text: str) -> str:
    style = rng.random()
    if style < 0.5:
        return text.lower()
    if style < 0.65:
        return text.upper()
    if style < 0.8:
        return text.title()
    return "".join(c.upper() if rng.random() < 0.3 else c for c in text)


def _sprinkle(rng: random.Random, text: str, pool: list[str], rate: float) -> str:
    out = []
    for ch in text:
        while rng.random() < rate:
            out.append(rng.choice(pool) * rng.choice((1, 1, 2, 3)))
        out.append(ch)
    return "".join(out)


def _random_char(rng: random.Random) -> str:
    ranges = [(0, 0x7F), (0x80, 0x2FF), (0x300, 0x36F), (0x400, 0x4FF), (0x2000, 0x206F),
              (0x2580, 0x2582), (0x3000, 0x3030), (0x4E00, 0x4E40), (0x1F300, 0x1F64F),
              (0xE000, 0xE010), (0xFFF0, 0xFFFF), (0x10FFF0, 0x10FFFF)]
    lo, hi = rng.choice(ranges)
    return chr(rng.randint(lo, hi))


def _one_text(rng: random.Random) -> str:
    kind = rng.randrange(12)
    if kind == 0:  # plain sentence
        return _case(rng, _sentence(rng, rng.randint(1, 20)))
    if kind == 1:  # Latin, digits, punctuation mixed in
        parts = [rng.choice([_make_word(rng), rng.choice(LATIN), str(rng.randint(0, 10 ** 9)),
                             rng.choice(PUNCT) * rng.randint(1, 4)]) for _ in range(rng.randint(1, 15))]
        return _case(rng, " ".join(parts))
    if kind == 2:  # characters missing from the alphabet, between and inside words
        return _sprinkle(rng, _case(rng, _sentence(rng, rng.randint(1, 12))), UNKNOWN, 0.08)
    if kind == 3:  # every separator kind, in runs, also leading/trailing
        words = [_make_word(rng) for _ in range(rng.randint(0, 10))]
        seps = ["".join(rng.choice(SEPARATORS) for _ in range(rng.randint(1, 4))) for _ in range(len(words) + 1)]
        return "".join(s + w for s, w in zip(seps, words + [""]))
    if kind == 4:  # whitespace-like characters that are word characters
        return _sprinkle(rng, _sentence(rng, rng.randint(1, 10)), NON_SEPARATORS + [" "], 0.1)
    if kind == 5:  # '▁' inside text and words
        return _sprinkle(rng, _sentence(rng, rng.randint(1, 10)), ["\u2581"], 0.1)
    if kind == 6:  # empty / whitespace-only / unknown-only / non-separator-only
        pools = [SEPARATORS, UNKNOWN, NON_SEPARATORS, SEPARATORS + UNKNOWN]
        pool = rng.choice(pools)
        return "".join(rng.choice(pool) for _ in range(rng.randint(0, 6)))
    if kind == 7:  # repeated words and letter runs (overlapping equal pairs)
        unit = rng.choice([_make_word(rng), rng.choice("аоеилнт") * rng.randint(2, 12), "ха", "ааб"])
        return rng.choice([" ", "", "-"]).join([unit] * rng.randint(2, 12))
    if kind == 8:  # random code points from many blocks
        return "".join(_random_char(rng) for _ in range(rng.randint(1, 30)))
    if kind == 9:  # combining marks after letters
        return _sprinkle(rng, _sentence(rng, rng.randint(1, 8)), COMBINING, 0.1)
    if kind == 10:  # long text or a very long word
        if rng.random() < 0.5:
            return _case(rng, _sentence(rng, rng.randint(200, 800)))
        return "".join(_make_word(rng) for _ in range(rng.randint(20, 200)))
    # kind 11: a little of everything
    text = _sentence(rng, rng.randint(1, 12))
    text = _sprinkle(rng, text, UNKNOWN + NON_SEPARATORS + SEPARATORS + PUNCT + COMBINING, 0.05)
    return _case(rng, text)


def varied_texts(n: int = 20000, seed: int = 0) -> list[str]:
    """``n`` deterministic texts covering the tokenizer's edge cases (see ``_one_text``)."""
    rng = random.Random(seed)
    return [_one_text(rng) for _ in range(n)]


def train_bpe(tmp_dir, vocab_size: int = 1000, **kw) -> str:
    """Train a YouTokenToMe BPE on ``training_corpus()`` in ``tmp_dir``; return the model path.

    ``kw`` goes to ``yttm.BPE.train`` (pad_id, unk_id, bos_id, eos_id, coverage, n_threads).
    """
    import youtokentome as yttm

    os.makedirs(tmp_dir, exist_ok=True)
    corpus = os.path.join(tmp_dir, "corpus.txt")
    if not os.path.exists(corpus):
        with open(corpus, "w", encoding="utf-8") as f:
            f.write(training_corpus())
    suffix = "".join(f"_{k}{v}" for k, v in sorted(kw.items()))
    model = os.path.join(tmp_dir, f"bpe_{vocab_size}{suffix}.model")
    kw.setdefault("n_threads", 1)
    yttm.BPE.train(data=corpus, model=model, vocab_size=vocab_size, **kw)
    return model
