"""Fixtures for the integration tests that talk to the fake Gemini and OpenAI servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes import Fakes, running_fakes


@pytest.fixture(scope="module")
def fake_server() -> Iterator[Fakes]:
    """One fake server per test module, on a free loopback port."""
    with running_fakes() as fakes:
        yield fakes


@pytest.fixture
def fakes(fake_server: Fakes) -> Fakes:
    """The module's fake server with no faults, answers or recorded traffic left over."""
    fake_server.reset()
    return fake_server
