"""Secrets never reach a file: run_config.json, tracker hyper-parameters, model cards and logs are written from
argument records passed through `without_secrets` first (the Hub token is an argument like any other)."""

from __future__ import annotations

import re
from typing import Any

# An argument whose name contains one of these is a secret, whatever its value.
SECRET_MARKERS = ("token", "password", "secret", "key")
# A value that looks like a Hugging Face access token is a secret, whatever its name.
TOKEN_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{8,}")


def is_secret(name: str, value: Any = None) -> bool:
    return any(marker in str(name).lower() for marker in SECRET_MARKERS) or (
        isinstance(value, str) and TOKEN_VALUE.search(value) is not None)


def without_secrets(record: Any) -> Any:
    """`record` (nested dicts / lists) with every secret entry dropped and token-like strings removed."""
    if isinstance(record, dict):
        return {key: without_secrets(value) for key, value in record.items() if not is_secret(key, value)}
    if isinstance(record, (list, tuple)):
        return type(record)(without_secrets(value) for value in record
                            if not (isinstance(value, str) and TOKEN_VALUE.search(value)))
    return record
