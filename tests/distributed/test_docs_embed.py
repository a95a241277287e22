"""docs/embed.md: its commands parse, its Python runs on tiny data."""
import os
import shlex

import pytest

from helpers.doc_blocks import DOCS, code_blocks
from ruclip.cli import build_parser

PAGE = DOCS / 'embed.md'


def section_commands():
    lines = [line for block in code_blocks(PAGE, language='bash') for line in block.splitlines()]
    lines = [line.replace('${SLURM_ARRAY_TASK_ID}', '5') for line in lines if line.strip() and not line.startswith('#')]
    return [shlex.split(line, comments=True) for line in lines]


def test_the_docs_commands_parse():
    commands = [c for c in section_commands() if c[:2] == ['ruclip', 'embed']]
    assert len(commands) == 6
    for command in commands:
        args = build_parser(command[1:]).parse_args(command[1:])
        assert not args.out.endswith(('.npy', '.npz'))
    ray = build_parser(commands[4][1:]).parse_args(commands[4][1:])
    assert (ray.engine, ray.ray_address, ray.partitions) == ('ray', 'auto', 8)
    slurm = build_parser(commands[5][1:]).parse_args(commands[5][1:])
    assert slurm.partition == (5, 64) and slurm.quiet


class FakeSparkContext:
    """parallelize(items, slices).foreach(f): f for each item, as Spark's executors would call it."""

    def parallelize(self, items, slices):
        assert slices == len(items)
        self.items = list(items)
        return self

    def foreach(self, function):
        self.calls = [function(i) for i in self.items]


def test_the_docs_python_and_spark_recipe_run(tmp_path, monkeypatch, image_folder, tiny_checkpoint):
    pytest.importorskip('pyarrow')
    (block,) = code_blocks(PAGE)
    monkeypatch.chdir(tmp_path)
    os.symlink(image_folder, 'photos')
    code = block.replace("'ruclip-vit-base-patch32-224'", repr(str(tiny_checkpoint)))
    spark = FakeSparkContext()
    namespace = {'sc': spark}
    exec(code, namespace)
    latents, paths = namespace['latents'], namespace['paths']
    assert latents.shape == (40, 24) and len(paths) == 40
    assert spark.items == [0, 1, 2, 3] and (tmp_path / 'shards-spark' / '_SUCCESS').exists()
    listed = [sorted(os.listdir(tmp_path / name / 'img_emb')) for name in ('shards-spark', 'shards')]
    assert listed[0] == listed[1]
