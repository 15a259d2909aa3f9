# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Logging set-up: stderr, the module id on every line, journald-friendly without a tty."""

from __future__ import annotations

import contextvars
import logging
import os
import sys

# The module on whose behalf the current code runs (set by the runtime around module code), so
# that records of loggers inside a module's own files name the module too.
current_module: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_module", default=None)


class _ModuleIdFilter(logging.Filter):
    def __init__(self, default: str) -> None:
        super().__init__()
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "module_id"):
            record.module_id = current_module.get() or self.default
        return True


def setup(verbosity: int = 0, default_id: str = "manager") -> None:
    """verbosity: -1 warnings only, 0 info (quiet), 1 debug including every MQTT frame."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ModuleIdFilter(default_id))
    if os.environ.get("JOURNAL_STREAM") or not sys.stderr.isatty():
        fmt = "%(levelname)s [%(module_id)s] %(message)s"
        if not os.environ.get("JOURNAL_STREAM"):
            fmt = "%(asctime)s.%(msecs)03d " + fmt
    else:
        fmt = "%(asctime)s.%(msecs)03d %(levelname)s [%(module_id)s] %(message)s"
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("everest_py.frames").setLevel(logging.DEBUG if verbosity >= 1 else logging.WARNING)
