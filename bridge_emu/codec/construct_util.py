"""Small helpers for the codecs built on construct: one-line error reasons and
parse results without construct's bookkeeping."""
from __future__ import annotations

import re
from typing import Any

from construct.lib import Container, ListContainer


def construct_reason(error: Exception) -> str:
    """One line out of a construct error (they carry their path on a line of its own)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    message = lines[-1] if lines else type(error).__name__
    path = getattr(error, "path", None)
    if path:
        field = re.sub(r"^\((parsing|building)\)( -> )?", "", path).strip()
        if field:
            return f"{field}: {message}"
    return message


def clean_container(value: Any) -> Any:
    """Drop construct's bookkeeping (the `_io` keys) from a parse result."""
    if isinstance(value, dict):
        return Container({key: clean_container(item) for key, item in value.items() if not key.startswith("_")})
    if isinstance(value, list):
        return ListContainer(clean_container(item) for item in value)
    return value
