# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The Python stack as the image installs it: size, file count, import time, time to global ready.

The stack is staged as tests/layer/rehearsal.py stages it (wheels of app/ and bsp/, the runtime
dependencies at the layer's versions, bytecode as the recipes compile it).  Size counts
site-packages and the console scripts; the stdlib line is an estimate from this host's
Python for the python3-* packages our RDEPENDS bring (the target has 3.12).
Import time: a fresh interpreter importing everest_py.framework.cli (which imports the manager),
the import alone, median of RUNS.  Time to global ready: `everest-py run` of the qemuarm64 default
config (sil-ac.yaml) until ALL_MODULES_STARTED, median of RUNS.  Both run in a private mount
namespace with the whole file system read-only, from the staged root and from the development
venv (editable installs, bytecode refreshed first) in turns; the ratios are staged / venv.
Run (as root): .venv/bin/python benchmarks/bench_rootfs.py [RUNS] (default 5)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from _common import REPO

sys.path.insert(0, str(REPO))
from tests.layer import rehearsal
from tests.layer.test_rdepends import DISTS, MANIFEST, rdepends, recipe_path

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
TARGET_MB = 40
MB = 1024 * 1024


def sizes(staged: rehearsal.Staged) -> tuple[dict[str, list[int]], int, int]:
    """{distribution: [bytes of files, bytes of bytecode, files]}, console scripts, total files."""
    owner: dict[str, str] = {}
    for inst in staged.installed:
        for f in inst.files:
            rel = Path(f).relative_to(rehearsal.SITE) if f.startswith(str(rehearsal.SITE)) else None
            if rel is not None:
                owner[rel.parts[0]] = inst.name
    split: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    count = 0
    for path in staged.site.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        name = owner.get(path.relative_to(staged.site).parts[0], "(unowned)")
        is_bytecode = path.suffix == ".pyc"
        split[name][1 if is_bytecode else 0] += path.stat().st_size
        split[name][2] += 1
        count += 1
    scaffolding = {staged.root / s for s in rehearsal.SCAFFOLDING}
    scripts = [p for p in (staged.root / "usr" / "bin").iterdir() if p not in scaffolding]
    return dict(split), sum(p.stat().st_size for p in scripts), count + len(scripts)


def stdlib_estimate() -> tuple[int, list[str]]:
    """Bytes of this host's stdlib modules in the python3-* packages our RDEPENDS bring (transitively)."""
    todo = [n.removeprefix("python3-") for d in DISTS for n in rdepends(recipe_path(d), d.recipe)]
    packages: set[str] = set()
    while todo:
        name = todo.pop()
        if name in MANIFEST["rdepends"] and name not in packages:
            packages.add(name)
            todo.extend(MANIFEST["rdepends"][name])
    lib = Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    total = 0
    for module, package in MANIFEST["modules"].items():
        if package not in packages or "." in module:
            continue
        candidates = [lib / module, lib / f"{module}.py", *lib.glob(f"lib-dynload/{module}.*.so")]
        candidates += list(lib.glob(f"__pycache__/{module}.*.pyc"))
        for c in candidates:
            found = [p for p in c.rglob("*") if p.is_file()] if c.is_dir() else [c] if c.is_file() else []
            # Optimisation levels 1 and 2 are not installed on the target.
            total += sum(p.stat().st_size for p in found if ".opt-" not in p.name)
    return total, sorted(packages)


def main() -> None:
    reason = rehearsal.namespace_available()
    if reason is not None:
        sys.exit(f"bench_rootfs needs private mount namespaces (run as root): {reason}")
    # The venv side starts from up-to-date bytecode, as after any ordinary run (in the read-only
    # namespace a stale .pyc would be compiled again on every start).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "app" / "src"), str(REPO / "bsp" / "src")], check=True
    )
    with tempfile.TemporaryDirectory(prefix="bench-rootfs-") as tmp:
        staged = rehearsal.stage(Path(tmp))
        split, scripts, files = sizes(staged)
        blocks = sum(-(-p.stat().st_size // 4096) * 4096 for p in staged.site.rglob("*") if p.is_file())
        overlay = rehearsal.sil_overlay()
        venv = rehearsal.venv_argv()
        runs = []
        for _ in range(RUNS):
            runs.append({"name": "staged", "argv": rehearsal.staged_argv(staged), "overlay": overlay})
            runs.append({"name": "venv", "argv": venv, "overlay": overlay})
        # One more start each with -v: how many modules were compiled from source (no valid .pyc).
        runs.append({"name": "staged -v", "argv": rehearsal.staged_argv(staged, verbose=True), "overlay": overlay})
        runs.append({"name": "venv -v", "argv": [*venv[:-1], "-v", venv[-1]], "overlay": overlay})
        report = rehearsal.rehearse(
            staged,
            {
                "runs": runs,
                "import_runs": RUNS * 2,
                "import_module": "everest_py.framework.cli",
                "import_argv": {"staged": [str(staged.python), "-I"], "venv": [sys.executable, "-I"]},
            },
            timeout_s=60 + RUNS * 40,
        )
        problems = staged.problems
        versions = {i.name: (i.version, i.source) for i in staged.installed}
    failed = [r for r in report["runs"] if "error" in r]
    if failed:
        sys.exit(json.dumps(failed, indent=1))
    ours = {"everest-py", "everest-py-bsp"}
    total = sum(s[0] + s[1] for s in split.values()) + scripts
    print(f"Python stack as staged for the image ({sys.version.split()[0]} here), {RUNS} runs")
    print(f"{'distribution':22} {'version':>9} {'files MB':>9} {'.pyc MB':>8} {'files':>6}  source")
    for name in sorted(split, key=lambda n: (n not in ours, n.lower())):
        f, b, n = split[name]
        version, source = versions.get(name, ("", ""))
        print(f"{name:22} {version:>9} {f / MB:9.2f} {b / MB:8.2f} {n:6d}  {source}")
    ours_bytes = sum(split[n][0] + split[n][1] for n in ours if n in split)
    deps_bytes = total - scripts - ours_bytes
    bytecode = sum(s[1] for s in split.values())
    print(
        f"total {total / MB:.1f} MB in {files} files, {blocks / MB:.1f} MB in 4 KiB blocks (target <= {TARGET_MB} MB)"
    )
    print(
        f"  ours {ours_bytes / MB:.1f} MB, dependencies {deps_bytes / MB:.1f} MB, scripts {scripts / 1024:.0f} kB; "
        f"bytecode {bytecode / MB:.1f} MB of the total"
    )
    std, packages = stdlib_estimate()
    print(f"stdlib estimate (python3-{{{','.join(packages)}}}): {std / MB:.1f} MB on this host's Python")
    if problems:
        print("staging notes: " + "; ".join(problems))
    imp = {k: statistics.median(v) for k, v in report["imports"].items()}
    ready: dict[str, list[float]] = defaultdict(list)
    compiled = {}
    for r in report["runs"]:
        ready[r["name"]].append(r["ready_s"])
        if r["name"].endswith(" -v"):
            compiled[r["name"].removesuffix(" -v")] = len(r["compiled_from_source"])
    med = {k: statistics.median(v) for k, v in ready.items()}
    print(f"{'':8} {'import cli ms':>14} {'to ready s':>11} {'compiled from source':>21}")
    for name in ("staged", "venv"):
        print(f"{name:8} {imp[name] * 1e3:14.1f} {med[name]:11.3f} {compiled[name]:21d}")
    print(
        f"ratio staged / venv: import {imp['staged'] / imp['venv']:.2f}x, "
        f"time to ready {med['staged'] / med['venv']:.2f}x"
    )


if __name__ == "__main__":
    main()
