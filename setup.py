from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = next(line.split("'")[1] for line in (here / 'ruclip' / '__init__.py').read_text().splitlines()
               if line.startswith('__version__'))

ONNX = ['onnx>=1.16', 'onnxruntime>=1.17', 'onnxscript>=0.2']  # torch.onnx.export(dynamo=True) needs onnxscript
HF = ['transformers>=4.56', 'tokenizers>=0.19']
OPENVINO = ['openvino>=2025.1', 'nncf>=2.16']  # nncf: int8 only; ~250 MB installed with scipy and scikit-learn

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
        'openvino': OPENVINO,
        'test': ['pytest', 'torchvision', 'youtokentome', 'more-itertools', 'matplotlib>=3.6'] + ONNX + HF + OPENVINO,
    },
    entry_points={'console_scripts': ['ruclip = ruclip.cli:main']},
)
