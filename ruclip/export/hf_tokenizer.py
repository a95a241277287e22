"""A transformers PreTrainedTokenizerFast giving RuCLIPProcessor's ids, built from the same bpe.model.

The `tokenizers` pipeline that reproduces youtokentome exactly: split on yttm's separators (removed),
'▁' prepended to every word, a BPE over the token strings with the rules in priority order, runs of
unknown characters fused into one unk; then [bos] + ids + [eos], cut to context_length.
"""
import functools
import os
from typing import Dict, List, Tuple, Union

from .._optional import require
from ..tokenizer import SPACE, BPETokenizer

SEPARATORS = '[\t\n\v\f\r \u2581]+'  # yttm's word separators: C isspace() in ASCII, and '▁'
PROCESSOR_IDS = {'pad': 0, 'bos': 2, 'eos': 3}  # as RuCLIPProcessor frames and pads every text
MIN_TOKENIZERS = (0, 19)  # Metaspace(split=False)


def build_tokenizer(bpe: Union[BPETokenizer, str, os.PathLike], context_length: int = 77, lowercase: bool = True):
    """A PreTrainedTokenizerFast with the ids RuCLIPProcessor gives for the same bpe.model.

    bpe: a bpe.model path or a BPETokenizer (RuCLIPProcessor.tokenizer).
    lowercase: add tokenizers' Lowercase normalizer, so transformers users (pipelines) need not lowercase.
        It equals Python's str.lower() except for the final-sigma rule ('Σ' ending a word becomes 'σ', not
        'ς') and for characters newer than this Python's Unicode tables; the latter are checked against the
        alphabet here. Text lowercased with str.lower() beforehand always gets exactly RuCLIPProcessor's ids.
    Raises ValueError for a bpe.model it cannot express exactly.
    """
    tokenizers = require('tokenizers', 'hf', 'the transformers tokenizer', MIN_TOKENIZERS)
    transformers = require('transformers', 'hf', 'the transformers tokenizer')
    if not isinstance(bpe, BPETokenizer):
        bpe = BPETokenizer.from_file(bpe)
    vocab = bpe.vocab()
    _check_expressible(bpe, vocab)
    if lowercase:
        _check_lowercase(vocab)

    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, processors
    unk, bos, eos, pad = (vocab[i] for i in (bpe.unk_id, bpe.bos_id, bpe.eos_id, bpe.pad_id))
    backend = tokenizers.Tokenizer(models.BPE(
        vocab={token: i for i, token in enumerate(vocab)},
        merges=[(vocab[x], vocab[y]) for x, y, _ in bpe.merges],
        unk_token=unk, fuse_unk=True))
    if lowercase:
        backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SEPARATORS), behavior='removed'),
        pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme='always', split=False),
    ])
    backend.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme='always', split=False)
    backend.post_processor = processors.TemplateProcessing(
        single=f'{bos} $A {eos}', pair=f'{bos} $A {eos} $B:1 {eos}:1',
        special_tokens=[(bos, bpe.bos_id), (eos, bpe.eos_id)])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=bos, eos_token=eos, unk_token=unk, pad_token=pad,
        model_max_length=context_length, padding_side='right', truncation_side='right',
        model_input_names=['input_ids', 'attention_mask'],  # no token_type_ids: CLIPModel takes none
        split_special_tokens=True,  # literal '<UNK>' in a text is text, as in youtokentome
        clean_up_tokenization_spaces=False)


def _check_expressible(bpe: BPETokenizer, vocab: List[str]) -> None:
    found = {'pad': bpe.pad_id, 'bos': bpe.bos_id, 'eos': bpe.eos_id}
    if found != PROCESSOR_IDS:
        detail = ''
        if 0 not in (bpe.unk_id, bpe.pad_id, bpe.bos_id, bpe.eos_id):
            detail = f' (id 0 is the real token {vocab[0]!r}, but RuCLIPProcessor pads with 0)'
        raise ValueError(f'cannot express this bpe.model exactly: RuCLIPProcessor pads with id 0 and frames texts '
                         f'with bos 2 and eos 3, so the bpe.model must define pad 0, bos 2, eos 3; it defines '
                         f'{found}{detail}')
    ids_of: Dict[str, List[int]] = {}
    for i, token in enumerate(vocab):
        ids_of.setdefault(token, []).append(i)
    duplicates = [(token, ids) for token, ids in ids_of.items() if len(ids) > 1]
    if duplicates:
        shown = ', '.join(f'{token!r} ids {ids}' for token, ids in duplicates[:5])
        more = f' and {len(duplicates) - 5} more' if len(duplicates) > 5 else ''
        raise ValueError(f'cannot express this bpe.model exactly: a transformers BPE maps each token string to '
                         f'one id, but these strings have several: {shown}{more}')


def _check_lowercase(vocab: List[str]) -> None:
    alphabet = {token for token in vocab if len(token) == 1}
    clashes = sorted(f'U+{ord(ch):04X} (lowercases to {ours!r} in Python, {theirs!r} in tokenizers)'
                     for ch, (ours, theirs) in _lowercase_differences().items()
                     if alphabet & set(ch + ours + theirs))
    if clashes:
        raise ValueError(f"cannot lowercase exactly as str.lower() with tokenizers' Lowercase normalizer: the "
                         f"alphabet holds characters they lowercase differently: {', '.join(clashes[:5])}; "
                         f"pass lowercase=False and lowercase texts with str.lower() before tokenizing")


@functools.lru_cache(maxsize=None)
def _lowercase_differences() -> Dict[str, Tuple[str, str]]:
    """{char: (str.lower(), tokenizers' Lowercase)} for every code point where the two differ."""
    from tokenizers import normalizers
    chars = [chr(c) for c in range(1, 0x110000) if not 0xD800 <= c <= 0xDFFF]  # '\0' is the separator
    theirs = normalizers.Lowercase().normalize_str('\0'.join(chars)).split('\0')
    return {ch: (ch.lower(), low) for ch, low in zip(chars, theirs) if ch.lower() != low}
