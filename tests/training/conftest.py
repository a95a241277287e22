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


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """Tiny models on one thread: on a shared machine with busy cores, two threads of tiny ops spend
    most of their time waiting for each other (30x slower here); children started by a test too."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    yield
    torch.set_num_threads(threads)
