from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = next(line.split("'")[1] for line in (here / 'ruclip' / '__init__.py').read_text().splitlines()
               if line.startswith('__version__'))

ONNX = ['onnx>=1.16', 'onnxruntime>=1.17', 'onnxscript>=0.2']  # torch.onnx.export(dynamo=True) needs onnxscript
HF = ['transformers>=4.56', 'tokenizers>=0.19']
DISTRIBUTED = ['pyarrow>=14']  # metadata parquet files, parquet/CSV tables
RAY = ['ray[data]>=2.40'] + DISTRIBUTED
DISTRIBUTED_TEST = ['embedding-reader>=1.7', 'webdataset>=0.2', 'faiss-cpu>=1.7']  # readers of the clip-retrieval layout
EVAL = ['scikit-learn>=1.3', 'torchvision', 'scipy']  # scipy: torchvision's Flowers102, StanfordCars, ImageNet devkit
OPENVINO = ['openvino>=2025.1', 'nncf>=2.16']  # nncf: int8 only; ~250 MB installed with scipy and scikit-learn
SEARCH = ['pyarrow>=10']  # only to read clip-retrieval's parquet metadata: the index itself is sqlite3 + numpy
FAISS = ['faiss-cpu>=1.8']
TRAIN = ['pyarrow>=14']  # the tables' reader (ruclip.distributed); LoRA is torch's parametrizations, no peft

setup(
    name='ruclip',
    version=version,
    description='RuCLIP: Russian CLIP image and text encoders, compatible with ruclip 0.0.2',
    long_description=(here / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['ruclip', 'ruclip.*']),
    package_data={'ruclip.evaluation': ['names/*.txt', 'names/*.md', 'published.json']},
    python_requires='>=3.9',
    install_requires=(here / 'requirements.txt').read_text().split(),
    extras_require={
        'plot': ['matplotlib>=3.6'],
        'onnx': ONNX,
        'hf': HF,
        'search': SEARCH,
        'faiss': FAISS,
        'serve': [],  # the page runs on the standard library's http.server
        'distributed': DISTRIBUTED,
        'ray': RAY,
        'eval': EVAL,
        'openvino': OPENVINO,
        'train': TRAIN,
        # the suite's tools; none needs a compiler
        'test': ['pytest', 'pytest-timeout', 'torchvision', 'matplotlib>=3.6'] + ONNX + HF + RAY + DISTRIBUTED_TEST
                + EVAL + ['clip-benchmark'] + OPENVINO + SEARCH + FAISS + TRAIN + ['selenium>=4.10'],
        # tests/parity/: against youtokentome and the original ruclip 0.0.2 (fetched by the tests from PyPI);
        # youtokentome has no wheels: install it with --no-build-isolation, Cython and wheel present
        'parity': ['youtokentome', 'more-itertools'],
    },
    entry_points={'console_scripts': ['ruclip = ruclip.cli:main']},
)
