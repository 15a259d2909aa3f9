# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Reading a YAML file into a mapping of keys to JSON values."""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from everest_py.errors import ConfigError

Json = Any

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class NotJson(ValueError):
    """A YAML value has no JSON form."""


def to_json(value: Any, where: str) -> Json:
    """``value`` as JSON data: timestamps become ISO strings, scalar mapping keys become strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotJson(f"{where}: {value} has no JSON form")
        return value
    if isinstance(value, datetime.date):  # datetime is a subclass of date
        return value.isoformat()
    if isinstance(value, list):
        return [to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Json] = {}
        for k, v in value.items():
            name = _key(k, where)
            out[name] = to_json(v, f"{where}.{name}")
        return out
    raise NotJson(f"{where}: a {type(value).__name__} value has no JSON form")


def _key(key: Any, where: str) -> str:
    """A YAML mapping key as a JSON object key."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float):
        return str(key)
    if isinstance(key, datetime.date):
        return key.isoformat()
    raise NotJson(f"{where}: mapping key {key!r} is not a scalar")


def load_store(path: str | Path) -> dict[str, Json]:
    """The top-level mapping of the YAML file ``path``; ConfigError naming the file and the problem."""
    path = Path(path).expanduser().absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: the YAML store file does not exist"]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"{path}: cannot read the YAML store file: {err}"]) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        raise ConfigError([f"{path}: not valid YAML: {err}".replace("\n", " ")]) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError([f"{path}: the top level must be a mapping of keys to values, not a {type(data).__name__}"])
    try:
        converted = to_json(dict(data), "")
    except NotJson as err:
        raise ConfigError([f"{path}: {str(err).lstrip('.')}"]) from None
    assert isinstance(converted, dict)
    return converted
