"""What an argument error shown to a client must never contain: the marks of pydantic's raw report."""

from __future__ import annotations

PYDANTIC = ("errors.pydantic.dev", "validation error for", "[type=", "input_value=")
