# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""An allow list file of tokens, read again whenever it changes on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol


class Log(Protocol):
    """The part of a logger the allow list uses."""

    def warning(self, msg: str, *args: Any) -> None: ...

    def info(self, msg: str, *args: Any) -> None: ...


def normalize(token: str) -> str:
    """Token values compare case-insensitively (/authorization#/IdToken)."""
    return token.casefold()


def parse_allowlist(text: str) -> frozenset[str]:
    """The tokens of an allow list: stripped lines, without blank lines and '#' comments."""
    tokens = set()
    for line in text.splitlines():
        token = line.strip()
        if token and not token.startswith("#"):
            tokens.add(normalize(token))
    return frozenset(tokens)


Signature = tuple[int, int, int]


def signature(st: os.stat_result) -> Signature:
    """What tells a changed file: modification time, size and inode (an atomic replace)."""
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class Allowlist:
    """The tokens of ``path``; a missing or unreadable file lists no token."""

    def __init__(self, path: str | Path, log: Log) -> None:
        self.path = Path(path).expanduser().absolute()
        self.log = log
        self.tokens: frozenset[str] = frozenset()
        self._seen: Signature | str | None = None  # the file version (or problem) read last

    def refresh(self) -> None:
        """Read the file again if it changed since the last look."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._fail("missing", "%s does not exist: every token is Invalid until it does")
            return
        except OSError as err:
            self._fail(f"stat {err}", f"%s cannot be read ({err}): every token is Invalid")
            return
        sig = signature(st)
        if sig == self._seen:
            return
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            self._fail(f"read {err}", f"%s cannot be read ({err}): every token is Invalid")
            return
        self.tokens = parse_allowlist(text)
        self._seen = sig
        self.log.info("%s: %d token(s) allowed", self.path, len(self.tokens))

    def _fail(self, problem: str, message: str) -> None:
        self.tokens = frozenset()
        if self._seen != problem:
            self._seen = problem
            self.log.warning(message, self.path)

    def contains(self, token: str) -> bool:
        """Whether ``token`` is listed (after looking for a change of the file)."""
        self.refresh()
        return normalize(token) in self.tokens
