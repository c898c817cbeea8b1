"""Fixtures for the FOMM model tests: the tiny configuration and random weights of ``fomm_helpers``."""

from __future__ import annotations

import pytest
from fomm_helpers import randomize, tiny_params


@pytest.fixture
def tiny():
    return tiny_params


@pytest.fixture
def randomized():
    return randomize
