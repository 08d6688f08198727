"""The README's examples (plugin, strategies, hostile client), run as a user's test file would be, so they
cannot go stale."""
from __future__ import annotations

import re

import pytest

from support.paths import ROOT

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.native


def readme_example(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- example: " + re.escape(name) + r" .*?-->\n```python\n(.*?)```", text, re.S)
    assert found, f"README has no example {name!r}"
    return found.group(1)


@pytest.mark.parametrize("name", ["plugin", "profile", "strategies", "hostile"])
def test_the_readme_examples_pass(pytester, name):
    code = readme_example(name)
    pytester.makepyfile(test_readme=code)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")    # a fresh process, as a user's run is
    result.assert_outcomes(passed=code.count("\ndef test_") + code.startswith("def test_"))
