"""Fixtures of the llm metric tests; the test doubles are in llm_metric_fakes.py."""

from __future__ import annotations

import pytest
from llm_metric_fakes import World, make_world


@pytest.fixture(scope="session")
def world() -> World:
    return make_world()
