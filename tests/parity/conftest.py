"""The parity group needs the [parity] extra: YouTokenToMe, which the original ruclip imports too."""
import pytest


@pytest.fixture(autouse=True)
def _parity_extra():
    pytest.importorskip('youtokentome')
