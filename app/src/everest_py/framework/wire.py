# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""EVerest's MQTT wire format: topic builders, the message envelope and error results."""

from __future__ import annotations

import itertools
import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any, Final

# msg_type values of the envelope (EVerest framework lib/types.cpp).
VAR: Final = "Var"
CMD: Final = "Cmd"
CMD_RESULT: Final = "CmdResult"
EXTERNAL: Final = "ExternalMQTT"
RAISE_ERROR: Final = "RaiseError"
CLEAR_ERROR: Final = "ClearError"
GET_CONFIG: Final = "GetConfig"
GET_CONFIG_RESPONSE: Final = "GetConfigResponse"
MODULE_READY: Final = "ModuleReady"
GLOBAL_READY: Final = "GlobalReady"

# Error result types a command can end with (keys from EVerest's conversions.hpp).
ERROR_TYPE_KEY: Final = "__everest__error_type"
ERROR_MSG_KEY: Final = "__everest__error_msg"
MESSAGE_PARSING_ERROR: Final = "MessageParsingError"
SCHEMA_VALIDATION_ERROR: Final = "SchemaValidationError"
HANDLER_EXCEPTION: Final = "HandlerException"
CMD_TIMEOUT: Final = "CmdTimeout"
SHUTDOWN: Final = "Shutdown"
NOT_READY: Final = "NotReady"

DEFAULT_PREFIX: Final = "everest/"
DEFAULT_TELEMETRY_PREFIX: Final = "everest-telemetry/"


def normalize_prefix(prefix: str) -> str:
    """EVerest always appends one '/' to the everest and telemetry prefixes."""
    return prefix if prefix.endswith("/") else prefix + "/"


class Topics:
    """Topic builders for one everest prefix."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = normalize_prefix(prefix)

    def module(self, module_id: str) -> str:
        return f"{self.prefix}modules/{module_id}"

    def impl(self, module_id: str, impl_id: str) -> str:
        return f"{self.prefix}modules/{module_id}/impl/{impl_id}"

    def cmd(self, module_id: str, impl_id: str, name: str) -> str:
        return f"{self.impl(module_id, impl_id)}/cmd/{name}"

    def cmd_response(self, module_id: str, impl_id: str, name: str, caller: str) -> str:
        return f"{self.cmd(module_id, impl_id, name)}/response/{caller}"

    def var(self, module_id: str, impl_id: str, name: str) -> str:
        return f"{self.impl(module_id, impl_id)}/var/{name}"

    def error(self, module_id: str, impl_id: str, error_type: str) -> str:
        return f"{self.impl(module_id, impl_id)}/error/{error_type}"

    def ready(self, module_id: str) -> str:
        return f"{self.module(module_id)}/ready"

    def metadata(self, module_id: str) -> str:
        return f"{self.module(module_id)}/metadata"

    def config_response(self, module_id: str) -> str:
        return f"{self.module(module_id)}/response"

    @property
    def config_request(self) -> str:
        return f"{self.prefix}config/request"

    @property
    def global_ready(self) -> str:
        return f"{self.prefix}ready"

    @property
    def all_ready(self) -> str:
        return f"{self.prefix}modules/+/ready"

    @property
    def all_errors(self) -> str:
        return f"{self.prefix}modules/+/impl/+/error/#"


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _finite(value: Any) -> Any:
    """NaN and infinities become null, as EVerest's JSON library writes them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _encode(value: Any) -> str:
    try:
        return _dumps(value)
    except ValueError:  # a NaN or infinity somewhere: rare, so only then walk the value
        return _dumps(_finite(value))


def dumps(value: Any) -> bytes:
    """Compact JSON as EVerest sends it."""
    return _encode(value).encode()


def envelope(msg_type: str, data: Any) -> bytes:
    """Encode ``{"msg_type": ..., "data": ...}``; TypeError if ``data`` is not JSON data."""
    return _encode({"msg_type": msg_type, "data": data}).encode()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(payload: bytes | str) -> Any:
    """Parse strict JSON: NaN and Infinity are refused, as by EVerest's parser."""
    return json.loads(payload, parse_constant=_no_constant)


def error_result(error_type: str, message: str) -> dict[str, str]:
    """The ``error`` member of a CmdResult."""
    return {ERROR_TYPE_KEY: error_type, ERROR_MSG_KEY: message}


_ids = itertools.count()
_id_base = uuid.uuid4().hex[:20]


def new_id() -> str:
    """A call id unique to this process run (UUID-shaped, cheaper than uuid4 per call)."""
    n = next(_ids)
    return f"{_id_base[:8]}-{_id_base[8:12]}-{_id_base[12:16]}-{_id_base[16:20]}-{n:012x}"


def timestamp() -> str:
    """UTC time with milliseconds, as EVerest stamps errors (``%FT%TZ`` plus ms)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
