# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Questions about a request tree: does it ask for a run now, and did it change since the last run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Measurements and the urgency flag change all the time without changing what is requested.
VOLATILE = ("energy_usage_root", "energy_usage_leaves", "priority_request")


def is_priority_request(request: Mapping[str, Any]) -> bool:
    """True if any node of the tree asks to be handled at once."""
    if request.get("priority_request") is True:
        return True
    return any(isinstance(c, Mapping) and is_priority_request(c) for c in request.get("children") or [])


def _stable(request: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in request.items() if k not in VOLATILE and k != "children"}
    out["children"] = [_stable(c) for c in request.get("children") or [] if isinstance(c, Mapping)]
    return out


def fingerprint(request: Mapping[str, Any]) -> str:
    """A text that changes exactly when the requested limits, states or structure change."""
    return json.dumps(_stable(request), sort_keys=True, separators=(",", ":"))
