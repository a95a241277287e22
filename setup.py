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
# the Russian scoreboard: XM3600's parquet form, and peers (transformers dual encoders, open_clip models)
EVAL_PEERS = ['pyarrow', 'huggingface_hub', 'transformers>=4.56', 'open_clip_torch>=2.24']
OPENVINO = ['openvino>=2025.1', 'nncf>=2.16']  # nncf: int8 only; ~430 MB installed with scipy and scikit-learn
SEARCH = ['pyarrow>=10']  # only to read clip-retrieval's parquet metadata: the index itself is sqlite3 + numpy
FAISS = ['faiss-cpu>=1.8']
DOCS = ['mkdocs>=1.6', 'mkdocs-material>=9.5', 'mkdocstrings[python]>=0.26']  # mkdocs.yml: the docs site
NOTEBOOKS = ['nbformat>=5', 'nbclient>=0.10', 'ipykernel']  # tests/docs runs examples/*.ipynb
SERVE = ['fastapi>=0.110', 'uvicorn>=0.29', 'orjson>=3.8']  # orjson: the embeddings' JSON; prometheus-client, when
# installed, adds /metrics
SERVE_TEST = ['prometheus-client>=0.17', 'openai>=1.30', 'schemathesis>=3.30', 'httpx>=0.27']
PHOTOS = ['pillow-heif>=0.16', 'Pillow>=11.3']  # HEIC/HEIF (pillow-heif); AVIF: Pillow's own reader
TRAIN_TEST = ['tensorboard']  # finetune logs TensorBoard events too when it is installed
TRAIN = DISTRIBUTED  # tables through ruclip.distributed's readers; evaluation's metrics need numpy only; LoRA: torch

setup(
    name='ruclip',
    version=version,
    description='RuCLIP: Russian CLIP image and text encoders, compatible with ruclip 0.0.2',
    long_description=(here / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['ruclip', 'ruclip.*']),
    package_data={'ruclip.evaluation': ['names/*.txt', 'names/*.md', 'published.json', 'published_peers.json'],
                  'ruclip.serve': ['static/*'], 'ruclip.search': ['vocabulary/*.txt']},
    python_requires='>=3.9',
    install_requires=(here / 'requirements.txt').read_text().split(),
    extras_require={
        'plot': ['matplotlib>=3.6'],
        'onnx': ONNX,
        'hf': HF,
        'search': SEARCH,
        'faiss': FAISS,
        'photos': PHOTOS,
        'serve': SERVE,
        'distributed': DISTRIBUTED,
        'ray': RAY,
        'eval': EVAL,
        'eval-peers': EVAL + EVAL_PEERS,
        'openvino': OPENVINO,
        'docs': DOCS,
        'train': TRAIN,
        # the suite's tools; none needs a compiler
        'test': ['pytest', 'pytest-timeout', 'torchvision', 'matplotlib>=3.6'] + ONNX + HF + RAY + DISTRIBUTED_TEST
                + EVAL + EVAL_PEERS + ['clip-benchmark'] + OPENVINO + SEARCH + FAISS + PHOTOS + ['selenium>=4.10'] + SERVE
                + SERVE_TEST + DOCS + NOTEBOOKS + TRAIN + TRAIN_TEST,
        # tests/parity/: against youtokentome and the original ruclip 0.0.2 (fetched by the tests from PyPI);
        # youtokentome has no wheels: install it with --no-build-isolation, Cython and wheel present
        'parity': ['youtokentome', 'more-itertools'],
    },
    entry_points={'console_scripts': ['ruclip = ruclip.cli:main']},
)
