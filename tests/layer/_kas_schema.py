# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Validate kas files against the JSON schema the kas package ships (run by the Yocto venv).

Prints one JSON object: {path: [error, ...]}.  Each error names the offending node and, for
anyOf/oneOf, the sub-errors that say what is really wrong.
"""

from __future__ import annotations

import json
import sys
from importlib.resources import files
from typing import Any

import jsonschema
import yaml


def errors(schema: dict[str, Any], path: str) -> list[str]:
    with open(path) as f:
        doc = yaml.safe_load(f)
    out = []
    for e in jsonschema.Draft7Validator(schema).iter_errors(doc):
        where = "/" + "/".join(map(str, e.absolute_path))
        out.append(f"{where}: {e.message}")
        out.extend(f"{where}:   {c.message}" for c in e.context or [])
    return out


def main() -> None:
    schema = json.loads(files("kas").joinpath("schema-kas.json").read_text())
    print(json.dumps({p: errors(schema, p) for p in sys.argv[1:]}))


if __name__ == "__main__":
    main()
