"""The evaluation tests need the [eval] extra: each is skipped, with the missing package named, without it."""
import pytest


@pytest.fixture(autouse=True)
def _eval_extra():
    for module in ('sklearn', 'torchvision', 'scipy'):
        pytest.importorskip(module)
