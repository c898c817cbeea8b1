"""Fixtures shared by the pipeline tests (the fakes themselves are in tests/live_fakes.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def running():
    """Start sessions and always close them (closing stops a running one; closing twice is fine)."""
    started = []

    def start(session):
        started.append(session)
        session.start()
        return session

    yield start
    for s in started:
        s.close()
