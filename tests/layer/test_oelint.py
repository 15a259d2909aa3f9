# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""oelint-adv over every recipe, bbappend, class and include: no findings.

A finding may only be silenced inline (``# nooelint: <rule> - <reason>``), next to what it is
about, and always with its reason.  The constants file only tells oelint what it cannot know:
the chargebyte machines, our distro, variables of classes it has no data for.
"""

from __future__ import annotations

import re
import subprocess

from .layers import REPO, recipe_files, yocto_tool

# oelint's data for the third-party layers we build with.
EXTRA_LAYERS = ["rauc", "openembedded-layer", "meta-python", "networking-layer", "yocto"]


def test_every_recipe_is_clean() -> None:
    oelint = yocto_tool("oelint-adv")
    files = [str(p.relative_to(REPO)) for p in recipe_files()]
    assert len(files) >= 15, files
    result = subprocess.run(
        [
            str(oelint),
            *files,
            "--quiet",
            "--relpaths",
            "--release",
            "scarthgap",
            "--jobs",
            "1",
            "--constantmods",
            "+tests/layer/oelint-constants.json",
            "--extra-layer",
            *EXTRA_LAYERS,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert findings == []
    assert result.returncode == 0


def test_every_suppression_gives_its_reason() -> None:
    pattern = re.compile(r"#\s*nooelint:\s*(\S+)(.*)")
    seen = 0
    for path in recipe_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            m = pattern.search(line)
            if m is None:
                continue
            seen += 1
            rules, reason = m.group(1), m.group(2).strip()
            assert all(r.startswith("oelint.") for r in rules.split(",")), f"{path.name}:{number}"
            assert reason.startswith("- ") and len(reason) > 12, f"{path.name}:{number}: no reason given"
    assert seen > 0
