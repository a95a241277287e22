"""The code in README.md, and the original ruclip README's snippets, run against a tiny checkpoint.

Only what cannot run here is swapped: the Hub is a local stand-in serving a tiny random checkpoint,
`requests` and `CIFAR100` hand out local pictures, and device is the CPU. The docs pages' examples
run in tests/test_docs_examples.py and beside each capability's tests.
"""
import base64
import shlex
import sys
import types

import pytest

from helpers.doc_blocks import README, code_blocks, command_lines
from helpers.images import encoded, rgb_image


# The original README's snippets, verbatim but for device = 'cpu'.
ORIGINAL_INIT = """
import ruclip

device = 'cpu'
clip, processor = ruclip.load('ruclip-vit-base-patch32-384', device=device)
"""
ORIGINAL_ZERO_SHOT = """
import torch
import base64
import requests
import matplotlib.pyplot as plt
from PIL import Image
from io import BytesIO

# prepare images
bs4_urls = requests.get('https://raw.githubusercontent.com/sberbank-ai/ru-dolph/master/pics/pipelines/cats_vs_dogs_bs4.json').json()
images = [Image.open(BytesIO(base64.b64decode(bs4_url))) for bs4_url in bs4_urls]

# prepare classes
classes = ['кошка', 'собака']
templates = ['{}', 'это {}', 'на картинке {}', 'это {}, домашнее животное']

# predict
predictor = ruclip.Predictor(clip, processor, device, bs=8, templates=templates)
with torch.no_grad():
    text_latents = predictor.get_text_latents(classes)
    pred_labels = predictor.run(images, text_latents)

# show results
f, ax = plt.subplots(2,4, figsize=(12,6))
for i, (pil_img, pred_label) in enumerate(zip(images, pred_labels)):
    ax[i//4, i%4].imshow(pil_img)
    ax[i//4, i%4].set_title(classes[pred_label])
"""
ORIGINAL_LINEAR_PROBE = """
train = CIFAR100(root, download=True, train=True)
test = CIFAR100(root, download=True, train=False)

with torch.no_grad():
    X_train = predictor.get_image_latents((pil_img for pil_img, _ in train)).cpu().numpy()
    X_test = predictor.get_image_latents((pil_img for pil_img, _ in test)).cpu().numpy()
    y_train, y_test = np.array(train.targets), np.array(test.targets)
"""


class FakeCIFAR100:
    def __init__(self, root, download, train):
        n = 12 if train else 5
        self.items = [(rgb_image(32, 32, seed=i + 100 * train), i % 3) for i in range(n)]
        self.targets = [label for _, label in self.items]

    def __iter__(self):
        return iter(self.items)


def test_original_readme_snippets_run_unchanged(hub_with_all_models, monkeypatch):
    pictures = [base64.b64encode(encoded(rgb_image(120 + 10 * i, 90, seed=i), 'JPEG')) for i in range(8)]
    fake_requests = types.SimpleNamespace(get=lambda url: types.SimpleNamespace(json=lambda: pictures))
    monkeypatch.setitem(sys.modules, 'requests', fake_requests)
    matplotlib = pytest.importorskip('matplotlib')  # the original's example plots
    matplotlib.use('Agg')
    import numpy as np

    namespace = {}
    exec(ORIGINAL_INIT, namespace)
    exec(ORIGINAL_ZERO_SHOT, namespace)
    assert len(namespace['pred_labels']) == 8 and set(namespace['pred_labels']) <= {0, 1}
    assert namespace['ax'][1, 3].get_title() in ('кошка', 'собака')

    namespace.update(CIFAR100=FakeCIFAR100, root='unused', np=np)
    exec(ORIGINAL_LINEAR_PROBE, namespace)
    assert namespace['X_train'].shape == (12, 24) and namespace['X_test'].shape == (5, 24)
    assert namespace['y_train'].tolist() == [i % 3 for i in range(12)]


EXAMPLES = 'One example per job'


def test_readme_zero_shot_example_runs(hub_with_all_models, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rgb_image(200, 150, seed=1).save('cat.jpg')
    rgb_image(150, 200, seed=2).save('dog.jpg')
    (block,) = code_blocks(README, EXAMPLES)
    namespace = {}
    exec(block, namespace)
    top = namespace['top']
    assert len(top.labels) == 2 and all(len(names) == 2 for names in top.labels)
    assert set(sum(top.labels, [])) <= {'кошка', 'собака', 'дом'}


def test_readme_commands_parse():
    from ruclip.cli import COMMANDS, build_parser

    known = {name for name, _, _ in COMMANDS}
    commands = [shlex.split(line, comments=True) for line in command_lines(README, EXAMPLES)
                if line.startswith('ruclip ')]
    named = {argv[1] for argv in commands}
    assert {'index', 'search', 'embed', 'eval', 'finetune', 'serve', 'export-onnx', 'export-hf'} <= named <= known
    for argv in commands:
        build_parser(argv[1:]).parse_args(argv[1:])  # argparse exits on an unknown option

