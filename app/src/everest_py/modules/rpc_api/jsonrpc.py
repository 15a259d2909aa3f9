# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""JSON-RPC 2.0 framing: decoding messages, binding parameters, dispatching, encoding answers.

Transport-free: :meth:`Dispatcher.decode` turns one received text into requests (or the error
answer for text that is no request at all), :meth:`Dispatcher.execute` runs one request for one
client and returns its response object (None for notifications), :func:`encode` writes the JSON.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Implementation-defined server errors (-32000 .. -32099), everest-py's own:
UNAUTHORIZED = -32001  # authentication is required and the request carries no valid token
BUSY = -32002  # the client has too many requests in flight

MESSAGES = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    UNAUTHORIZED: "Unauthorized",
    BUSY: "Server busy",
}

HELLO = "API.Hello"
TOKEN_PARAM = "token"  # noqa: S105 - a parameter name (everest-py extension), not a secret

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]


class RpcError(Exception):
    """A JSON-RPC error answer."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code} {MESSAGES.get(code, 'Server error')}: {detail}")

    def error_object(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": MESSAGES.get(self.code, "Server error")}
        if self.detail:
            out["data"] = self.detail
        return out


Kind = Literal["integer", "number", "boolean", "string"]


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind
    required: bool = True


@dataclass
class Client:
    """What the server knows about one connection."""

    id: str
    hello_done: bool = False
    authenticated: bool = False


Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Method:
    """A method: its parameters and ``async handler(client, **params)``."""

    name: str
    params: tuple[Param, ...]
    handler: Handler
    needs_auth: bool = True


@dataclass(frozen=True)
class Auth:
    """Token authentication (everest-py): off unless ``required``."""

    required: bool = False
    token: str = ""

    def check(self, token: Any) -> bool:
        return bool(self.token) and isinstance(token, str) and hmac.compare_digest(token.encode(), self.token.encode())


@dataclass(frozen=True)
class Request:
    method: str
    params: Any  # list, dict or None
    id: Any
    notification: bool


@dataclass
class Decoded:
    """One received message: its requests, or the answer to send for a message that has none."""

    requests: list[Request] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # answers for invalid batch members
    batch: bool = False
    answer: dict[str, Any] | None = None  # parse error / invalid request of the whole message


def error_response(error: RpcError, request_id: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": error.error_object(), "id": request_id}


def result_response(result: Any, request_id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "result": result, "id": request_id}


def notification(method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def round_floats(value: Any, places: int) -> Any:
    """Every float in ``value`` rounded to ``places`` digits (0: left as it is)."""
    if places <= 0:
        return value
    if isinstance(value, float):
        return round(value, places)
    if isinstance(value, dict):
        return {k: round_floats(v, places) for k, v in value.items()}
    if isinstance(value, list):
        return [round_floats(v, places) for v in value]
    return value


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities (which JSON cannot carry) replaced by null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def encode(message: Any) -> str:
    """Compact JSON; non-finite numbers become null, values JSON does not know become strings."""
    try:
        return json.dumps(message, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        return json.dumps(_finite(message), separators=(",", ":"), allow_nan=False, default=str)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _valid_id(value: Any) -> bool:
    return value is None or isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool))


def _request(obj: Any) -> Request | dict[str, Any]:
    """A request object, or the error answer for an invalid one."""
    if not isinstance(obj, dict):
        return error_response(RpcError(INVALID_REQUEST, "a request is a JSON object"))
    request_id = obj.get("id")
    answer_id = request_id if _valid_id(request_id) else None
    if obj.get("jsonrpc") != "2.0":
        return error_response(RpcError(INVALID_REQUEST, 'jsonrpc must be "2.0"'), answer_id)
    if not isinstance(obj.get("method"), str):
        return error_response(RpcError(INVALID_REQUEST, "method must be a string"), answer_id)
    if "params" in obj and not isinstance(obj["params"], list | dict):
        return error_response(RpcError(INVALID_REQUEST, "params must be an object or an array"), answer_id)
    if not _valid_id(request_id):
        return error_response(RpcError(INVALID_REQUEST, "id must be a string, a number or null"))
    return Request(obj["method"], obj.get("params"), request_id, "id" not in obj)


def _check(param: Param, value: Any) -> Any:
    ok: bool
    if param.kind == "boolean":
        ok = isinstance(value, bool)
    elif param.kind == "string":
        ok = isinstance(value, str)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        ok = False
    elif param.kind == "integer":
        ok = isinstance(value, int) or (math.isfinite(value) and value == int(value))
        value = int(value) if ok else value
    else:
        ok = math.isfinite(value)
        value = float(value)
    if not ok:
        raise RpcError(INVALID_PARAMS, f"{param.name} must be {'an' if param.kind == 'integer' else 'a'} {param.kind}")
    return value


def bind(params: Sequence[Param], given: Any) -> dict[str, Any]:
    """Named or positional ``given`` parameters as keyword arguments; RpcError(INVALID_PARAMS) if they do not fit.

    Unknown named parameters are ignored (as json-rpc-cxx, which EVerest uses, does).
    """
    out: dict[str, Any] = {}
    if given is None:
        given = {}
    if isinstance(given, list):
        if len(given) > len(params):
            raise RpcError(INVALID_PARAMS, f"at most {len(params)} parameters")
        given = {p.name: v for p, v in zip(params, given, strict=False)}
    for p in params:
        if p.name in given and not (given[p.name] is None and not p.required):
            out[p.name] = _check(p, given[p.name])
        elif p.required:
            raise RpcError(INVALID_PARAMS, f"missing parameter {p.name}")
    return out


class Dispatcher:
    """The methods of the API and how requests reach them."""

    def __init__(
        self, methods: Iterable[Method], auth: Auth | None = None, decimal_places: int = 0, log: Logger | None = None
    ) -> None:
        self.log: Logger = log or logging.getLogger("everest_py.module.rpc_api")
        self.methods = {m.name: m for m in methods}
        self.auth = auth or Auth()
        self.decimal_places = decimal_places

    def decode(self, text: str | bytes) -> Decoded:
        try:
            data = json.loads(text, parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError) as err:
            return Decoded(answer=error_response(RpcError(PARSE_ERROR, str(err))))
        if isinstance(data, list):
            if not data:
                return Decoded(answer=error_response(RpcError(INVALID_REQUEST, "empty batch")))
            decoded = Decoded(batch=True)
            for item in data:
                req = _request(item)
                if isinstance(req, Request):
                    decoded.requests.append(req)
                else:
                    decoded.errors.append(req)
            return decoded
        req = _request(data)
        return Decoded(requests=[req]) if isinstance(req, Request) else Decoded(answer=req)

    async def execute(self, request: Request, client: Client) -> dict[str, Any] | None:
        """Run one request; its response object, None for a notification."""
        try:
            result = await self._run(request, client)
        except RpcError as err:
            response = error_response(err, request.id)
        except Exception as err:  # any failure of a method is an Internal error answer
            self.log.exception("%s failed", request.method)
            response = error_response(RpcError(INTERNAL_ERROR, type(err).__name__), request.id)
        else:
            response = result_response(round_floats(result, self.decimal_places), request.id)
        return None if request.notification else response

    async def _run(self, request: Request, client: Client) -> Any:
        method = self.methods.get(request.method)
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, request.method)
        params = request.params
        token = None
        if isinstance(params, dict) and TOKEN_PARAM in params and all(p.name != TOKEN_PARAM for p in method.params):
            params = dict(params)
            token = params.pop(TOKEN_PARAM)
        if self.auth.required and method.needs_auth and not client.authenticated and not self.auth.check(token):
            raise RpcError(UNAUTHORIZED, "call API.Hello with a valid token, or pass token with each request")
        return await method.handler(client, **bind(method.params, params))
