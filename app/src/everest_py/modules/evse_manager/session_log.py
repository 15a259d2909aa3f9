# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Per-session log files: one folder per session with a JSON-lines event log (``session_logging``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import IO, Any

from everest_py.modules.evse_manager.clock import Clock
from everest_py.modules.evse_manager.energy import rfc3339

log = logging.getLogger(__name__)

INCOMPLETE = "incomplete-eventlog.jsonl"
COMPLETE = "eventlog.jsonl"


class SessionLog:
    """Writes ``<root>/<start time>-<suffix>/eventlog.jsonl``; ``incomplete-`` while the session runs.

    ``suffix`` is EVerest's ``logfile_suffix``: the special value ``session_uuid`` stands for the
    session id. Each line is one JSON object ``{"timestamp", "kind", "data"}``.
    """

    def __init__(self, clock: Clock, root: str, suffix: str = "session_uuid", enabled: bool = True) -> None:
        self._clock = clock
        self.root = Path(root)
        self.suffix = suffix
        self.enabled = enabled
        self.folder: Path | None = None
        self._file: IO[str] | None = None

    def start(self, session_id: str) -> str | None:
        """Open the log of a new session; returns its folder (the SessionStarted ``logging_path``)."""
        self.finish()
        if not self.enabled:
            return None
        name = session_id if self.suffix == "session_uuid" else self.suffix
        stamp = rfc3339(self._clock.utc_now())
        folder = self.root / f"{stamp}-{name}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._file = (folder / INCOMPLETE).open("a", encoding="utf-8")
        except OSError as err:
            log.warning("session log %s not written: %s", folder, err)
            return None
        self.folder = folder
        self.write("session", {"session_id": session_id})
        return str(folder.absolute())

    def write(self, kind: str, data: Any) -> None:
        if self._file is None:
            return
        line = {"timestamp": rfc3339(self._clock.utc_now()), "kind": kind, "data": data}
        try:
            self._file.write(json.dumps(line, separators=(",", ":")) + "\n")
            self._file.flush()
        except (OSError, ValueError) as err:
            log.warning("session log write failed: %s", err)

    def finish(self) -> None:
        """Close the current log and drop its ``incomplete-`` prefix."""
        if self._file is None or self.folder is None:
            return
        try:
            self._file.close()
            (self.folder / INCOMPLETE).replace(self.folder / COMPLETE)
        except OSError as err:
            log.warning("session log %s not completed: %s", self.folder, err)
        self._file = None
        self.folder = None
