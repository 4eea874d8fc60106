"""The reference pages name what the code defines: every error code in docs/protocol.md,
every Redis/Kafka name of tickwire.core.names in docs/names.md."""

from __future__ import annotations

import inspect
from pathlib import Path

from tickwire.core import names
from tickwire.core.models import ErrorCode

DOCS = Path(__file__).resolve().parents[2] / "docs"
PLACEHOLDERS = {"symbol": "<SYMBOL>", "edge_id": "<EDGE_ID>", "provider": "<provider>",
                "key_id": "<key digest>"}


def test_every_error_code_is_in_the_protocol_page():
    text = (DOCS / "protocol.md").read_text() + (DOCS / "http-api.md").read_text()
    missing = [code.value for code in ErrorCode if f"`{code.value}`" not in text]
    assert missing == []


def test_every_name_is_in_the_names_page():
    text = (DOCS / "names.md").read_text()
    expected = [value for name, value in vars(names).items()
                if name.isupper() and isinstance(value, str)]
    for name, function in inspect.getmembers(names, inspect.isfunction):
        parameters = list(inspect.signature(function).parameters)
        if name.endswith(("_key", "_channel")) and all(p in PLACEHOLDERS for p in parameters):
            expected.append(function(*(PLACEHOLDERS[p] for p in parameters)))
    assert [value for value in expected if value not in text] == []
