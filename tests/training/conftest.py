"""Data a test can learn from, drawn once per session: coloured shapes with Russian captions."""
import pytest

from helpers.pictures import write_image_folder, write_table

PER_CLASS = 10  # training pictures of each of the 12 classes
HELD_OUT = 5  # pictures of each class never trained on


@pytest.fixture(scope='session')
def shapes(tmp_path_factory):
    """dict(train=table of 120 pairs, train_folder=the same kind of data as an ImageFolder,
    val=held-out ImageFolder of 60 pictures): other seeds, so no held-out picture is a training one."""
    root = tmp_path_factory.mktemp('shapes')
    return dict(train=write_table(root / 'train', PER_CLASS, seed=1),
                train_folder=write_image_folder(root / 'train_folder', PER_CLASS, seed=3),
                val=write_image_folder(root / 'val', HELD_OUT, seed=2))
