"""Regenerate bpe_600.model, the tests' tokenizer: youtokentome trained on helpers.texts' Russian corpus
(vocabulary 600; pad 0, unk 1, bos 2, eos 3, the RuCLIP checkpoints' ids).

    pip install Cython wheel setuptools && pip install --no-build-isolation youtokentome
    python tests/data/make_bpe.py

youtokentome breaks ties between equally frequent merges differently from run to run (about one run
in twelve gives other ids), so the file is made once and shipped, and the tests need no compiler.
"""
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from helpers.texts import train_bpe  # noqa: E402

if __name__ == '__main__':
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copyfile(train_bpe(scratch, vocab_size=600), HERE / 'bpe_600.model')
    print(HERE / 'bpe_600.model')
