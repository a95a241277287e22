"""Fixtures of the serve tests."""
import pytest

from helpers.library import predictor_for


@pytest.fixture(scope='session')
def predictor(tiny_checkpoint):
    return predictor_for(tiny_checkpoint)
