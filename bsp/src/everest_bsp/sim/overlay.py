# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Run a board's config unchanged against the simulator: a work folder with an overlay beside it.

EVerest merges ``user-config/<name>`` over a config at load time.  ``prepare`` makes a folder
holding a link to the unchanged config and, in ``user-config/``, an overlay rendered from a
template: ``@RUN@`` becomes the work folder (board tree, databases), ``@REPO@`` the repository
and any other ``@KEY@`` the value given for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path


def default_repo() -> Path:
    """The repository whose config/ the overlays name: $EVEREST_PY_REPO, else this source checkout."""
    env = os.environ.get("EVEREST_PY_REPO")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[4]  # bsp/src/everest_bsp/sim/overlay.py in a checkout


def render(template: str, values: Mapping[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise KeyError(f"overlay template needs a value for @{key}@")
        return values[key]

    return re.sub(r"@([A-Z_]+)@", sub, template)


def prepare(config: Path, template: Path, workdir: Path, repo: Path | None = None, **values: str) -> Path:
    """The config path to run: ``workdir/<name>`` linking to ``config``, with the rendered overlay."""
    workdir.mkdir(parents=True, exist_ok=True)
    link = workdir / config.name
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(config.resolve(), link)
    overlay = workdir / "user-config" / config.name
    overlay.parent.mkdir(exist_ok=True)
    overlay.write_text(
        render(template.read_text(), {"RUN": str(workdir.resolve()), "REPO": str(repo or default_repo()), **values})
    )
    return link
