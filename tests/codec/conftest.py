"""Fixtures for the codec tests."""

import pytest

from codec.synth import synth_fields


@pytest.fixture
def fields(rng):
    return synth_fields(rng, 6, 32)
