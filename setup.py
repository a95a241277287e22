from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = next(line.split("'")[1] for line in (here / 'ruclip' / '__init__.py').read_text().splitlines()
               if line.startswith('__version__'))

ONNX = ['onnx>=1.16', 'onnxruntime>=1.17', 'onnxscript>=0.2']  # torch.onnx.export(dynamo=True) needs onnxscript
HF = ['transformers>=4.56', 'tokenizers>=0.19']
SEARCH = ['pyarrow>=10']  # only to read clip-retrieval's parquet metadata: the index itself is sqlite3 + numpy
FAISS = ['faiss-cpu>=1.8']

setup(
    name='ruclip',
    version=version,
    description='RuCLIP: Russian CLIP image and text encoders, compatible with ruclip 0.0.2',
    long_description=(here / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['ruclip', 'ruclip.*']),
    python_requires='>=3.9',
    install_requires=(here / 'requirements.txt').read_text().split(),
    extras_require={
        'plot': ['matplotlib>=3.6'],
        'onnx': ONNX,
        'hf': HF,
        'search': SEARCH,
        'faiss': FAISS,
        'serve': [],  # the page runs on the standard library's http.server
        'test': ['pytest', 'torchvision', 'youtokentome', 'more-itertools', 'matplotlib>=3.6'] + ONNX + HF
                + SEARCH + FAISS + ['selenium>=4.10'],
    },
    entry_points={'console_scripts': ['ruclip = ruclip.cli:main']},
)
