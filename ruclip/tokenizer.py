"""Pure-Python reader and encoder/decoder for YouTokenToMe ``bpe.model`` files.

Gives the same ids as ``youtokentome`` 1.0.6 (``dropout_prob=0``) and the same
decoded strings, without needing the compiled extension at runtime.
"""
from __future__ import annotations

import heapq
import os
import re

__all__ = ["BPETokenizer", "SPACE"]

SPACE = "\u2581"  # '▁', starts every word
# yttm splits on C isspace() (ASCII only) plus '▁'; NBSP, U+3000, ... are word characters.
_WORD_RE = re.compile("[^\t\n\v\f\r \u2581]+")
_SPECIAL_NAMES = ("<UNK>", "<PAD>", "<BOS>", "<EOS>")  # in the file's order: unk pad bos eos
_UNKNOWN = -1  # placeholder for a run of characters missing from the alphabet; never merges


class BPETokenizer:
    """Byte-pair-encoding tokenizer equivalent to ``youtokentome.BPE`` (no dropout).

    Its methods take youtokentome's calls (encode/decode of lists, bos/eos, vocab(), subword_to_id,
    id_to_subword), except output_type=SUBWORD and ``vocab_size``: an int here, a method there.
    """

    def __init__(self, char2id, merges, unk_id, pad_id=-1, bos_id=-1, eos_id=-1, cache_size=100_000):
        self.unk_id, self.pad_id, self.bos_id, self.eos_id = unk_id, pad_id, bos_id, eos_id
        self.merges = [tuple(rule) for rule in merges]
        self._char2id = dict(char2id)
        if SPACE not in self._char2id:
            raise ValueError("the alphabet has no U+2581 '\u2581' (word start) character")
        specials = (unk_id, pad_id, bos_id, eos_id)
        self.vocab_size = len(self._char2id) + len(self.merges) + sum(i != -1 for i in specials)

        tokens = {i: ch for ch, i in self._char2id.items()}
        for rank, (x, y, z) in enumerate(self.merges):
            if x not in tokens or y not in tokens:
                raise ValueError(f"rule #{rank} ({x} {y} {z}) uses an id not defined before it")
            tokens[z] = tokens[x] + tokens[y]
        for name, i in zip(_SPECIAL_NAMES, specials):
            if i != -1:
                tokens[i] = name
        if len(tokens) != self.vocab_size or set(tokens) != set(range(self.vocab_size)):
            raise ValueError(f"token ids are not exactly 0..{self.vocab_size - 1} (duplicated or missing ids)")
        self._vocab = [tokens[i] for i in range(self.vocab_size)]
        self._pieces = [  # decoding form: a leading '▁' becomes a space
            t if i in specials else (" " + t[1:] if t.startswith(SPACE) else t)
            for i, t in enumerate(self._vocab)
        ]
        # Later duplicates of a pair win, as in yttm's rule2id map.
        self._ranks = {(x, y): rank for rank, (x, y, _) in enumerate(self.merges)}
        self._space_id = self._char2id[SPACE]
        self._ids_of_subwords = {t: i for i, t in enumerate(self._vocab)}
        self._cache: dict[str, tuple[int, ...]] = {}
        self._cache_size = cache_size

    @classmethod
    def from_file(cls, path) -> "BPETokenizer":
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such file; expected a YouTokenToMe bpe.model") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not a YouTokenToMe bpe.model (not text: {e})") from None

        def fail(message):
            return ValueError(f"{path}: corrupt YouTokenToMe bpe.model: {message}")

        lines = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]

        def ints(k, width, what):
            number, fields = lines[k]
            try:
                values = [int(v) for v in fields]
            except ValueError:
                raise fail(f"line {number}: expected {width} integers ({what}), got {' '.join(fields)!r}") from None
            if len(values) != width:
                raise fail(f"line {number}: expected {width} integers ({what}), got {len(values)}")
            return values

        if not lines:
            raise fail("the file is empty")
        n_chars, n_rules = ints(0, 2, "n_chars n_rules")
        if n_chars < 0 or n_rules < 0:
            raise fail(f"negative counts in header: {n_chars} {n_rules}")
        body = len(lines) - 1
        if body < n_chars:
            raise fail(f"expected {n_chars} char lines, found {body}")
        if body - n_chars < n_rules:
            raise fail(f"expected {n_rules} rule lines, found {body - n_chars}")
        if body == n_chars + n_rules:
            raise fail("missing the last line 'unk pad bos eos'")
        if body > n_chars + n_rules + 1:
            raise fail(f"{body - n_chars - n_rules - 1} unexpected line(s) after 'unk pad bos eos'")

        char2id = {}
        for k in range(1, n_chars + 1):
            code, i = ints(k, 2, "code point, id")
            if not 0 <= code <= 0x10FFFF or i < 0:
                raise fail(f"line {lines[k][0]}: invalid code point or id {code} {i}")
            char2id[chr(code)] = i
        if len(char2id) != n_chars:
            raise fail("duplicated code points in the alphabet")
        merges = [tuple(ints(k, 3, "rule x y z")) for k in range(n_chars + 1, n_chars + n_rules + 1)]
        unk, pad, bos, eos = ints(len(lines) - 1, 4, "unk pad bos eos")
        if unk < 0 or min(pad, bos, eos) < -1:
            raise fail(f"invalid special ids unk={unk} pad={pad} bos={bos} eos={eos}")
        try:
            return cls(char2id, merges, unk_id=unk, pad_id=pad, bos_id=bos, eos_id=eos)
        except ValueError as e:
            raise fail(str(e)) from None

    def encode(self, text, output_type="id", bos=False, eos=False, reverse=False, dropout_prob=0.0):
        """Ids of a str ``text``, as ``bpe.encode([text], output_type=ID)[0]``.

        Also takes youtokentome's own call: a list of texts gives a list of ids per text, with
        bos/eos/reverse as there. Only output_type=ID: id_to_subword names the tokens.
        """
        if str(getattr(output_type, "name", output_type)).lower() != "id":
            raise ValueError(f"output_type must be ID (yttm.OutputType.ID or 'id'), got {output_type!r}; "
                             f"id_to_subword names the tokens")
        if dropout_prob:
            raise ValueError(f"BPE-dropout is not supported: dropout_prob must be 0, got {dropout_prob!r}")
        if isinstance(text, (list, tuple)):
            return [self.encode(t, output_type, bos, eos, reverse) for t in text]
        if not isinstance(text, str):
            raise TypeError(f"encode() expects a str (or a list of str), got {type(text).__name__}")
        ids = [self.bos_id] * bool(bos) + self._ids(text) + [self.eos_id] * bool(eos)
        if reverse:
            ids.reverse()
        return ids

    def _ids(self, text: str) -> list[int]:
        cache, ids = self._cache, []
        for word in _WORD_RE.findall(text):
            word_ids = cache.get(word)
            if word_ids is None:
                word_ids = self._encode_word(word)
                if len(cache) >= self._cache_size:
                    cache.clear()
                cache[word] = word_ids
            ids.extend(word_ids)
        return ids

    def _encode_word(self, word: str) -> tuple[int, ...]:
        char2id = self._char2id
        tokens = [self._space_id]
        for ch in word:
            i = char2id.get(ch, _UNKNOWN)
            if i != _UNKNOWN or tokens[-1] != _UNKNOWN:
                tokens.append(i)

        # Priority-queue BPE as in yttm: pop the (rule rank, position) minimum,
        # skip stale entries, push the two pairs around each merge.
        ranks, merges = self._ranks, self.merges
        heap = []
        for pos in range(len(tokens) - 1):
            rank = ranks.get((tokens[pos], tokens[pos + 1]))
            if rank is not None:
                heap.append((rank, pos))
        if heap:
            heapq.heapify(heap)
            nxt = list(range(1, len(tokens) + 1))
            nxt[-1] = -1
            prv = list(range(-1, len(tokens) - 1))
            while heap:
                rank, left = heapq.heappop(heap)
                right = nxt[left]
                x, y, z = merges[rank]
                if right == -1 or tokens[left] != x or tokens[right] != y:
                    continue
                tokens[left], tokens[right] = z, None
                after = nxt[right]
                nxt[left] = after
                if after != -1:
                    prv[after] = left
                    rank = ranks.get((z, tokens[after]))
                    if rank is not None:
                        heapq.heappush(heap, (rank, left))
                before = prv[left]
                if before != -1:
                    rank = ranks.get((tokens[before], z))
                    if rank is not None:
                        heapq.heappush(heap, (rank, before))
        tokens = [t for t in tokens if t is not None]
        # yttm also marks merged-away nodes with id 0 and starts a word's output at its first
        # non-zero node: an unmerged leading '▁' is dropped when '▁' has id 0 (no pad/eos ids).
        if tokens[0] == 0:
            del tokens[0]
        unk = self.unk_id
        return tuple(unk if t == _UNKNOWN else t for t in tokens)

    def decode(self, ids, ignore_ids=()) -> str:
        """Text of ``ids`` (list, numpy array or 1-D tensor), as ``bpe.decode([ids], ignore_ids)[0]``;
        a list of id lists (or a 2-D array) gives a list of texts, as ``bpe.decode``."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        if ids and isinstance(ids[0], (list, tuple)):  # youtokentome's call: a list of id lists
            return [self.decode(row, ignore_ids) for row in ids]
        ignore = {int(i) for i in (ignore_ids.tolist() if hasattr(ignore_ids, "tolist") else ignore_ids or ())}
        pieces, n = self._pieces, self.vocab_size
        out = []
        for i in ids:
            i = int(i)
            if i in ignore:
                continue
            if not 0 <= i < n:
                raise ValueError(f"token id {i} is out of range for vocab_size {n} (valid ids: 0..{n - 1})")
            out.append(pieces[i])
        text = "".join(out)
        return text[1:] if out and out[0].startswith(" ") else text

    def vocab(self) -> list[str]:
        """Token strings indexed by id, as ``bpe.vocab()`` (specials as '<PAD>', '<UNK>', ...)."""
        return list(self._vocab)

    def subword_to_id(self, subword: str) -> int:
        """The id of a token string, unk_id for one not in the vocabulary, as ``bpe.subword_to_id``."""
        return self._ids_of_subwords.get(subword, self.unk_id)

    def id_to_subword(self, i: int) -> str:
        if not 0 <= i < self.vocab_size:
            raise ValueError(f"token id {i} is out of range for vocab_size {self.vocab_size}")
        return self._vocab[i]
