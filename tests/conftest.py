"""Shared fixtures; the helpers themselves live in tests/support/."""
from __future__ import annotations

import pytest

from support.flash import TestFlash


@pytest.fixture
def flash() -> TestFlash:
    return TestFlash()
