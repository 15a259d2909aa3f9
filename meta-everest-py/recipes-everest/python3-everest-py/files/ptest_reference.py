# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""pytest plugin for ptest: a test that needs EVerest's reference files is skipped, not failed.

Some tests compare our manifests and contracts with the verbatim EVerest copies that sit next to
the repository (``../shared``).  Those copies are not shipped to the charger, so on the target
such a test stops with FileNotFoundError on a path under ``/shared/``.  That one outcome becomes a
skip with the reason; every other failure stays a failure.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

MARK = "/shared/"
REASON = "needs EVerest's reference files next to the repository (not on the target)"


def _missing_reference(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, FileNotFoundError) and MARK in str(exc.filename or ""):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None and _missing_reference(call.excinfo.value):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {REASON}")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    # A collection error only carries its formatted traceback.
    text = str(report.longrepr) if report.failed else ""
    if "FileNotFoundError" in text and MARK in text:
        report.outcome = "skipped"
        report.result = []
        report.longrepr = (str(collector.path), 0, f"Skipped: {REASON}")
