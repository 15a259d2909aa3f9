# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The rootfs rehearsal: app/ and bsp/ installed as the Yocto recipes install them, run read-only.

Staging (:func:`stage`, in the caller's process):

- app/ and bsp/ are copied without the host's build output (as ``everest_py_drop_host_artifacts``
  does) and built into wheels with ``pip wheel --no-build-isolation`` (the recipes run
  ``python -m build --no-isolation --wheel``; the bsp wheel compiles the cffi extension);
- the runtime dependencies follow the wheels' ``Requires-Dist``: a dependency whose recipe the layer
  carries (``meta-everest-py/recipes-devtools/python/python3-<name>_<version>.bb``) is installed
  at that version from a wheel (``pip wheel``, registry or pip cache), any other one is copied from
  the development venv (its version there; meta-python's may differ);
- every wheel is unpacked into ``<root>/usr/lib/pythonX.Y/site-packages`` with console scripts in
  ``<root>/usr/bin`` whose first line is ``#!/usr/bin/env python3``, as the recipes' pypa/installer
  writes them; bytecode is compiled as on the target: checked-hash for the dependencies
  (pypa/installer under SOURCE_DATE_EPOCH, which every Yocto task sets) and unchecked-hash for
  ours (``do_install:append`` of everest-py-source.inc);
- ``/etc/everest`` gets what everest-py-service's ``do_install`` puts there: the files its loop
  names, ``VERSION``, ``config.yaml`` linking to the qemuarm64 default and the ``user-config``
  link to the data directory.

Two files make the staged root runnable on the host without a chroot: ``usr/bin/python3`` links
to the host's base interpreter and ``usr/pyvenv.cfg`` makes ``<root>/usr`` its ``sys.prefix``, so
``site`` adds exactly the staged site-packages (neither the venv nor the repository). Absolute
links that point into the target's file system (``user-config``) are staged with the root
prefixed.

Running (:func:`run_inside` through :func:`rehearse`): a private mount namespace
(``unshare --mount``) in which the staged root is bind-mounted read-only, ``/var/lib/everest``,
``/run`` (with ``/run/everest-py``), ``/tmp`` and ``/root`` (HOME) under it are tmpfs, and then
every other writable mount of the host (``/`` included) is remounted read-only, so that a write
anywhere but those tmpfs fails.  Python runs with ``-I`` (and without PYTHONDONTWRITEBYTECODE);
with ``-v`` it logs every module it compiles from source and every ``.pyc`` it fails to write.
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.parser import Parser
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LAYER = REPO / "meta-everest-py"
SERVICE_RECIPE_DIR = LAYER / "recipes-everest" / "everest-py"
PYVER = f"python{sys.version_info.major}.{sys.version_info.minor}"
SITE = Path("usr") / "lib" / PYVER / "site-packages"
OURS = {"everest-py": "app", "everest-py-bsp": "bsp"}
OUR_PACKAGES = ("everest_py", "everest_bsp")
# The run config everest-py-service links /etc/everest/config.yaml to on qemuarm64.
DEFAULT_CONFIG = "sil-ac.yaml"
SHEBANG = b"#!/usr/bin/env python3"
# Files of the staged root that only make it runnable on the host (not on the target).
SCAFFOLDING = ("usr/pyvenv.cfg", "usr/bin/python3")
# The target's writable places, tmpfs in the rehearsal: the state directory (the data partition on
# the charger) and /run; HOME and TMPDIR get a tmpfs of their own inside the staged root.
DATA = Path("/var/lib/everest")
RUN = Path("/run")
HOME_TMP = ("root", "tmp")
# Staged directories laid over the host's, read-only, so that the target's paths resolve.
OVERLAYS = ("/etc", "/var/lib")
KERNEL_FS = {"proc", "sysfs", "devtmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "tracefs", "debugfs", "securityfs"}
EVSE = "connector_1"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- staging ------------------------------------------------------------------------------------


@dataclass
class Installed:
    """One distribution in the staged root."""

    name: str
    version: str
    source: str  # how it got there
    files: list[str] = field(default_factory=list)  # relative to the root, bytecode excluded


@dataclass
class Staged:
    root: Path
    installed: list[Installed]
    problems: list[str]  # dependency versions that miss a requirement, downloads that failed

    @property
    def site(self) -> Path:
        return self.root / SITE

    @property
    def python(self) -> Path:
        return self.root / "usr" / "bin" / "python3"

    @property
    def script(self) -> Path:
        return self.root / "usr" / "bin" / "everest-py"

    @property
    def etc(self) -> Path:
        return self.root / "etc" / "everest"

    @classmethod
    def load(cls, data: dict[str, Any]) -> Staged:
        return cls(Path(data["root"]), [Installed(**i) for i in data["installed"]], data["problems"])

    def dump(self) -> dict[str, Any]:
        return {"root": str(self.root), "installed": [asdict(i) for i in self.installed], "problems": self.problems}


def _run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kw)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _ignore_host_artifacts(directory: str, names: list[str]) -> set[str]:
    """What everest_py_drop_host_artifacts removes from the copied source tree."""
    drop = set()
    for name in names:
        if os.path.isdir(os.path.join(directory, name)):
            build_output = name in ("__pycache__", "build", "dist") or name.endswith(".egg-info")
        else:
            build_output = name.endswith((".so", ".pyc", ".pyo"))
        if build_output:
            drop.add(name)
    return drop


def build_wheels(work: Path) -> dict[str, Path]:
    """Wheels of app/ and bsp/, built from clean copies; {distribution name: wheel}."""
    src = work / "src"
    out = work / "wheels"
    for folder in OURS.values():
        shutil.copytree(REPO / folder, src / folder, ignore=_ignore_host_artifacts, symlinks=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(out),
            *(str(src / f) for f in OURS.values()),
        ],
        cwd=work,
    )
    wheels = {canonical(p.name.split("-")[0]): p for p in out.glob("*.whl")}
    assert set(wheels) == set(OURS), wheels
    return wheels


def layer_pins() -> dict[str, tuple[str, str]]:
    """{distribution: (version, recipe file)} of the dependency recipes the layer carries."""
    pins = {}
    for bb in sorted((LAYER / "recipes-devtools" / "python").glob("python3-*_*.bb")):
        name, _, version = bb.stem.partition("_")
        pins[canonical(name.removeprefix("python3-"))] = (version, bb.name)
    return pins


def _wheel_metadata(whl: Path) -> tuple[str, str, list[str]]:
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(z.read(meta).decode())
    return msg["Name"], msg["Version"], msg.get_all("Requires-Dist") or []


def _runtime_requirements(specs: list[str]) -> list[Any]:
    from packaging.requirements import Requirement

    out = []
    for spec in specs:
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out.append(req)
    return out


def install_wheel(whl: Path, root: Path) -> Installed:
    """Unpack a wheel into the target layout (what pypa/installer does for the recipes)."""
    name, version, _ = _wheel_metadata(whl)
    site = root / SITE
    files: list[str] = []
    with zipfile.ZipFile(whl) as z:
        dist_info = next(n.split("/")[0] for n in z.namelist() if n.split("/")[0].endswith(".dist-info"))
        data = dist_info.removesuffix(".dist-info") + ".data"
        for info in z.infolist():
            if info.is_dir():
                continue
            first, _, rest = info.filename.partition("/")
            content = z.read(info)
            mode = (info.external_attr >> 16) & 0o777 or 0o644
            if first == data:
                scheme, _, rel = rest.partition("/")
                base = {
                    "purelib": site,
                    "platlib": site,
                    "scripts": root / "usr" / "bin",
                    "data": root / "usr",
                    "headers": root / "usr" / "include" / PYVER / name,
                }[scheme]
                target = base / rel
                if scheme == "scripts":
                    mode = 0o755
                    if content.startswith(b"#!python"):
                        content = SHEBANG + content[content.index(b"\n") :]
            else:
                target = site / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(mode | 0o644)
            files.append(str(target.relative_to(root)))
        (site / dist_info / "INSTALLER").write_text("rehearsal\n")
        files.append(str((site / dist_info / "INSTALLER").relative_to(root)))
        entry_points = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        with contextlib.suppress(KeyError):
            entry_points.read_string(z.read(f"{dist_info}/entry_points.txt").decode())
    if entry_points.has_section("console_scripts"):
        for script, target_spec in entry_points.items("console_scripts"):
            module, _, attr = target_spec.strip().partition(":")
            path = root / "usr" / "bin" / script
            path.parent.mkdir(parents=True, exist_ok=True)
            head, _, tail = attr.partition(".")
            call = f"{head}.{tail}" if tail else head
            path.write_text(
                f"{SHEBANG.decode()}\nimport sys\nfrom {module} import {head}\n\n"
                f'if __name__ == "__main__":\n    sys.exit({call}())\n'
            )
            path.chmod(0o755)
            files.append(str(path.relative_to(root)))
    return Installed(name, version, "", files)


def copy_from_venv(name: str, root: Path) -> Installed:
    """Copy an installed distribution of the development venv into the staged root."""
    import importlib.metadata

    dist = importlib.metadata.distribution(name)
    site = root / SITE
    venv_bin = Path(sys.prefix) / "bin"
    files: list[str] = []
    for f in dist.files or []:
        rel = str(f)
        if "__pycache__" in rel or rel.endswith((".pyc", ".pyo")):
            continue
        src = Path(str(dist.locate_file(f))).resolve()
        if rel.startswith("../"):
            if src.parent != venv_bin.resolve():
                continue  # neither site-packages nor a script: nothing the target would get
            target = root / "usr" / "bin" / src.name
            content = src.read_bytes()
            if content.startswith(b"#!") and b"python" in content.split(b"\n", 1)[0]:
                content = SHEBANG + b"\n" + content.split(b"\n", 1)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(0o755)
        else:
            target = site / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            target.chmod(src.stat().st_mode & 0o777 | 0o644)
        files.append(str(target.relative_to(root)))
    return Installed(dist.metadata["Name"], dist.version, "copy of the development venv", files)


def fetch_wheels(pins: dict[str, str], dest: Path) -> str | None:
    """Wheels of ``{name: version}`` into ``dest`` (registry or pip cache); an error text if not."""
    if not pins:
        return None
    try:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--wheel-dir",
                str(dest),
                *(f"{n}=={v}" for n, v in sorted(pins.items())),
            ],
            timeout=300,
        )
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        return str(err).strip().splitlines()[-1]
    return None


def install_python_stack(root: Path, work: Path) -> tuple[list[Installed], list[str]]:
    """Our wheels and the closure of their runtime requirements, installed into ``root``."""
    import importlib.metadata

    problems: list[str] = []
    ours = build_wheels(work)
    pins = layer_pins()
    installed: dict[str, Installed] = {}
    pending = [r for whl in ours.values() for r in _runtime_requirements(_wheel_metadata(whl)[2])]
    wanted: dict[str, list[Any]] = {}
    seen_venv: dict[str, list[str]] = {}
    # The closure first (pins do not change requirement names), then the wheels in one go.
    while pending:
        req = pending.pop()
        key = canonical(req.name)
        wanted.setdefault(key, []).append(req)
        if key in OURS or key in seen_venv or key in pins:
            continue
        try:
            seen_venv[key] = importlib.metadata.distribution(req.name).requires or []
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{req.name}: required, but neither pinned by the layer nor in the venv")
            seen_venv[key] = []
        pending.extend(_runtime_requirements(seen_venv[key]))
    fetched = work / "deps"
    needed_pins = {k: pins[k][0] for k in wanted if k in pins}
    error = fetch_wheels(needed_pins, fetched)
    if error:
        problems.append(f"pinned dependencies not fetched ({error}); the venv's versions stand in")
    for key, whl in ours.items():
        installed[key] = install_wheel(whl, root)
        installed[key].source = f"wheel built from {OURS[key]}/"
    by_name = {canonical(p.name.split("-")[0]): p for p in fetched.glob("*.whl")} if fetched.is_dir() else {}
    for key in sorted(needed_pins):
        if key in by_name:
            installed[key] = install_wheel(by_name[key], root)
            installed[key].source = f"wheel at the version of {pins[key][1]}"
            pending.extend(_runtime_requirements(_wheel_metadata(by_name[key])[2]))
        else:
            installed[key] = copy_from_venv(key, root)
    for key in sorted(seen_venv):
        if key not in installed:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                installed[key] = copy_from_venv(key, root)
    for req in pending:  # requirements of pinned wheels that the venv closure did not have
        if canonical(req.name) not in installed:
            problems.append(f"{req.name}: required by a pinned wheel, not staged")
    for key, reqs in wanted.items():
        if key in installed:
            for req in reqs:
                if not req.specifier.contains(installed[key].version, prereleases=True):
                    problems.append(f"{key} {installed[key].version} does not satisfy {req}")
    return sorted(installed.values(), key=lambda i: canonical(i.name)), problems


def compile_bytecode(root: Path) -> None:
    """Bytecode as the image has it: checked-hash for dependencies, unchecked-hash for ours."""
    site = root / SITE
    common = [sys.executable, "-m", "compileall", "-q", "-j", "0", "-s", str(root), "-p", "/"]
    _run([*common, "--invalidation-mode", "checked-hash", str(site)])
    _run([*common, "-f", "--invalidation-mode", "unchecked-hash", *(str(site / p) for p in OUR_PACKAGES)])


def service_config_patterns() -> list[str]:
    """The globs everest-py-service's do_install copies into /etc/everest (``${S}`` is the repo)."""
    recipe = next(SERVICE_RECIPE_DIR.glob("everest-py-service_*.bb"))
    m = re.search(
        r"for f in ([^;]+); do\s*\n\s*install -m 0644 \"\$f\" \$\{D\}\$\{sysconfdir\}/everest/", recipe.read_text()
    )
    if m is None:
        raise AssertionError(f"{recipe.name}: no loop installing config files into /etc/everest")
    return [p.replace("${S}/", "") for p in m.group(1).split()]


def stage_service(root: Path) -> None:
    """/etc/everest, the state directory and the unit files, as everest-py-service installs them."""
    etc = root / "etc" / "everest"
    etc.mkdir(parents=True)
    for pattern in service_config_patterns():
        for f in sorted(REPO.glob(pattern)):
            shutil.copyfile(f, etc / f.name)
            (etc / f.name).chmod(0o644)
    (etc / "VERSION").write_text("everest-py 0.1.0 (rehearsal)\n")
    (etc / "config.yaml").symlink_to(DEFAULT_CONFIG)
    (etc / "user-config").symlink_to(DATA / "user-config")
    for d in (*HOME_TMP, str(DATA).lstrip("/"), str(RUN).lstrip("/")):
        (root / d).mkdir(parents=True, exist_ok=True)
    units = root / "usr" / "lib" / "systemd" / "system"
    units.mkdir(parents=True)
    files = SERVICE_RECIPE_DIR / "files"
    shutil.copyfile(files / "everest-py.service", units / "everest-py.service")
    (units / "mosquitto.service.d").mkdir()
    shutil.copyfile(files / "mosquitto.service.conf", units / "mosquitto.service.d" / "10-everest-py.conf")
    (root / "usr" / "lib" / "tmpfiles.d").mkdir(parents=True)
    shutil.copyfile(files / "everest-py.tmpfiles", root / "usr" / "lib" / "tmpfiles.d" / "everest-py.conf")
    (root / "etc" / "mosquitto").mkdir(parents=True)
    shutil.copyfile(files / "mosquitto-everest-py.conf", root / "etc" / "mosquitto" / "everest-py.conf")


def make_runnable(root: Path) -> None:
    """usr/bin/python3 and usr/pyvenv.cfg: the host interpreter with <root>/usr as its prefix."""
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    (root / "usr" / "bin").mkdir(parents=True, exist_ok=True)
    (root / "usr" / "bin" / "python3").symlink_to(base)
    v = sys.version_info
    (root / "usr" / "pyvenv.cfg").write_text(
        f"home = {base.parent}\ninclude-system-site-packages = false\nversion = {v.major}.{v.minor}.{v.micro}\n"
    )


def stage(work: Path) -> Staged:
    """Build, install and compile everything into ``work/root``."""
    root = work / "root"
    root.mkdir(parents=True)
    installed, problems = install_python_stack(root, work)
    compile_bytecode(root)
    stage_service(root)
    make_runnable(root)
    return Staged(root, installed, problems)


# -- snapshots ----------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """{path: (mode, size, mtime_ns)} of everything under ``root``, links not followed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    st = root.lstat()
    out["."] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def diff(before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]) -> list[str]:
    changes = [f"new {p}" for p in sorted(after.keys() - before.keys())]
    changes += [f"gone {p}" for p in sorted(before.keys() - after.keys())]
    changes += [f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    return changes


# -- the run, in the mount namespace ---------------------------------------------------------------


def namespace_available() -> str | None:
    """None if private mount namespaces work here, else why not."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "unshare(1) or mount(8) is not installed"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "mount", "--no-mtab", "-t", "tmpfs", "tmpfs", "/mnt"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"no private mount namespace with mounts here: {probe.stderr.strip() or probe.returncode}"
    return None


def rehearse(staged: Staged, spec: dict[str, Any], timeout_s: float = 120.0) -> dict[str, Any]:
    """Run :func:`run_inside` with ``spec`` in a private mount namespace; its report."""
    spec = {**spec, "root": str(staged.root)}
    argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        sys.executable,
        "-B",
        str(Path(__file__).resolve()),
        json.dumps(spec),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the rehearsal did not finish within {timeout_s} s:\n{err[-4000:]}") from None
    if proc.returncode != 0:
        raise AssertionError(f"the rehearsal failed ({proc.returncode}):\n{err[-6000:]}")
    report: dict[str, Any] = json.loads(out)
    return report


def _mount(*args: str) -> None:
    subprocess.run(["mount", "--no-mtab", *args], check=True, capture_output=True, text=True)


def _mounts() -> list[tuple[str, str, str]]:
    """(mount point, options, fs type) of this namespace."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        point = fields[4].replace("\\040", " ")
        out.append((point, fields[5], right.split()[0]))
    return out


def tmpfs_mounts(root: Path) -> list[Path]:
    return [DATA, RUN, *(root / d for d in HOME_TMP)]


def _lockdown(root: Path) -> list[str]:
    """The staged root read-only, laid over /etc and /var/lib, the tmpfs mounted, every other
    writable mount read-only; returns what was remounted."""
    _mount("--bind", str(root), str(root))
    _mount("-o", "remount,bind,ro", str(root))
    for top in OVERLAYS:
        _mount("-t", "overlay", "rehearsal", "-o", f"lowerdir={root}{top}:{top}", top)
    tmpfs = tmpfs_mounts(root)
    for path in tmpfs:
        _mount("-t", "tmpfs", "-o", "mode=0755,size=256m", "rehearsal", str(path))
    remounted = []
    for point, options, fstype in _mounts():
        if Path(point) in tmpfs or fstype in KERNEL_FS or "rw" not in options.split(","):
            continue
        if point in ("/proc", "/sys", "/dev") or point.startswith(("/proc/", "/sys/", "/dev/")):
            continue
        _mount("-o", "remount,bind,ro", point)
        remounted.append(point)
    return remounted


def _tmpfiles(root: Path) -> str:
    """Apply the staged tmpfiles.d entries as at boot (systemd-tmpfiles, or the d/L/C subset)."""
    conf = root / "usr" / "lib" / "tmpfiles.d" / "everest-py.conf"
    if shutil.which("systemd-tmpfiles"):
        out = subprocess.run(["systemd-tmpfiles", "--create", str(conf)], capture_output=True, text=True, check=False)
        return f"systemd-tmpfiles: {out.returncode} {out.stderr.strip()}".strip()
    for line in conf.read_text().splitlines():
        fields = line.split(None, 6)
        if not fields or fields[0].startswith("#"):
            continue
        kind, path = fields[0], Path(fields[1])
        argument = fields[6] if len(fields) > 6 else ""
        if kind == "d":
            path.mkdir(mode=int(fields[2], 8), parents=True, exist_ok=True)
        elif kind == "L" and not path.is_symlink():
            path.symlink_to(argument)
        elif kind == "C" and not path.exists():
            shutil.copyfile(argument, path)
    return "emulated (no systemd-tmpfiles)"


def _write_probe(path: Path) -> str:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as err:
        return os.strerror(err.errno) if err.errno else str(err)
    os.close(fd)
    path.unlink()
    return "written"


def _listing(top: Path) -> list[str]:
    return sorted(str(p.relative_to(top)) for p in top.rglob("*"))


class _Notify:
    """The systemd notification socket, as a Type=notify service gets it, read by a thread.

    systemd reads it at once; a socket nobody reads fills up, and then the sender blocks.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self.messages.append(self.sock.recv(4096).decode())

    def seen(self, text: str) -> bool:
        return any(text in m for m in list(self.messages))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()
        self.path.unlink(missing_ok=True)


def _session_watch(port: int) -> tuple[Any, list[str]]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from everest_py.framework.wire import Topics

    events: list[str] = []
    topic = Topics("everest").var(EVSE, "evse", "session_event")

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            events.append(json.loads(msg.payload)["data"]["data"]["event"])

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(topic)
    client.loop_start()
    return client, events


def _wait(what: str, check: Any, proc: subprocess.Popen[bytes], timeout_s: float) -> float:
    t0 = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return time.perf_counter() - t0
        if proc.poll() is not None:
            raise RuntimeError(f"the stack exited with {proc.returncode} before {what}")
        time.sleep(0.005)
    raise RuntimeError(f"no {what} within {timeout_s} s")


def _stack_env(root: Path, port: int) -> dict[str, str]:
    """everest-py.service's environment (the broker on loopback), HOME and TMPDIR on tmpfs."""
    return {
        "PATH": f"{root / 'usr' / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(root / "root"),
        "TMPDIR": str(root / "tmp"),
        "LANG": "C.UTF-8",
        "EVEREST_PY_RUNTIME_DIR": str(RUN / "everest-py"),
        "MQTT_SERVER_ADDRESS": "127.0.0.1",
        "MQTT_SERVER_PORT": str(port),
    }


def parse_verbose_log(text: str) -> dict[str, list[str]]:
    """What ``python -v`` logged: modules imported, code loaded, sources compiled, .pyc written."""
    return {
        "imported": sorted(set(re.findall(r"^import '([^']+)'", text, re.MULTILINE))),
        "code_from": sorted(set(re.findall(r"^# code object from '?([^'\n]+?)'?$", text, re.MULTILINE))),
        "extensions_from": sorted(
            set(re.findall(r"^# extension module '[^']+' loaded from '([^']+)'$", text, re.MULTILINE))
        ),
        "compiled_from_source": sorted(set(re.findall(r"^# code object from '?([^'\n]+\.py)'?$", text, re.MULTILINE))),
        "bytecode_writes": sorted(set(re.findall(r"^# (?:could not create|created) .*$", text, re.MULTILINE))),
    }


def _one_run(root: Path, run: dict[str, Any], port: int, index: int) -> dict[str, Any]:
    """Start the stack once as everest-py.service does and watch it; stops it with SIGTERM.

    ``run``: name, argv (interpreter and script), config (default /etc/everest/config.yaml),
    overlay (written to the user-config directory under the config's name), session (wait for
    ChargingStarted on connector_1).
    """
    data, rundir = DATA, RUN
    logs = rundir / "rehearsal"
    (rundir / "everest-py").mkdir(exist_ok=True)  # RuntimeDirectory=everest-py
    fifo = rundir / "everest-py" / f"status-{index}"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    notify = _Notify(logs / f"notify-{index}")
    client, events = _session_watch(port) if run.get("session") else (None, [])
    env = {**_stack_env(root, port), "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}
    config = Path(run.get("config", "/etc/everest/config.yaml"))
    if run.get("overlay"):
        (data / "user-config" / config.name).write_text(json.dumps(run["overlay"]))
    log = logs / f"stack-{index}.log"
    argv = [*run["argv"], "run", str(config), "--status-fifo", str(fifo)]
    status = b""
    result: dict[str, Any] = {"name": run["name"], "argv": argv}
    t0 = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=data, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:

        def ready() -> bool:
            nonlocal status
            with contextlib.suppress(BlockingIOError):
                status += os.read(reader, 4096)
            return b"ALL_MODULES_STARTED" in status

        try:
            _wait("ALL_MODULES_STARTED", ready, proc, 30.0)
            result["ready_s"] = time.perf_counter() - t0
            _wait("READY=1", lambda: notify.seen("READY=1"), proc, 5.0)
            _wait("WATCHDOG=1", lambda: notify.seen("WATCHDOG=1"), proc, 5.0)
            if run.get("session"):
                _wait("ChargingStarted", lambda: "ChargingStarted" in events, proc, 30.0)
        except RuntimeError as err:
            result["error"] = str(err)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # what systemd sends
        try:
            result["exit_code"] = proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            result["exit_code"] = proc.wait()
        os.close(reader)
        fifo.unlink()
        notify.close()
        result["notify"] = sorted({m.split("\n")[0] for m in notify.messages})
        if client is not None:
            client.loop_stop()
            client.disconnect()
    result["status"] = status.decode(errors="replace").split()
    result["session_events"] = events
    text = log.read_text(errors="replace")
    result.update(parse_verbose_log(text))
    result["log_tail"] = "\n".join(line for line in text.splitlines() if not line.startswith(("#", "import ")))[-3000:]
    return result


def _command(root: Path, argv: list[str], port: int) -> dict[str, Any]:
    out = subprocess.run(
        argv,
        check=False,
        cwd=DATA,
        env=_stack_env(root, port),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return {"argv": argv, "returncode": out.returncode, "output": (out.stdout + out.stderr)[-3000:]}


def _import_times(argv: list[str], runs: int, module: str) -> list[float]:
    """Seconds to import ``module`` in ``runs`` fresh interpreters (the import alone)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    times = []
    for _ in range(runs):
        out = subprocess.run([*argv, "-c", code], capture_output=True, text=True, check=True, timeout=60)
        times.append(float(out.stdout.split()[-1]))
    return times


def run_inside(spec: dict[str, Any]) -> dict[str, Any]:
    """In the mount namespace: lock down, run the stack(s), report."""
    from everest_py.testing import Broker

    root = Path(spec["root"])
    report: dict[str, Any] = {"remounted": _lockdown(root)}
    shown = {"/", str(root), *OVERLAYS, *map(str, tmpfs_mounts(root))}
    report["mounts"] = {p: o for p, o, _ in _mounts() if p in shown}
    report["write_probes"] = {p: _write_probe(Path(p)) for p in spec.get("write_probes", [])}
    report["tmpfiles"] = _tmpfiles(root)
    (RUN / "rehearsal").mkdir()
    broker = Broker(RUN / "mosquitto")
    broker.dir.mkdir()
    broker.start()
    runs = []
    try:
        for index, run in enumerate(spec.get("runs", [])):
            runs.append(_one_run(root, run, broker.port, index))
        report["commands"] = [_command(root, argv, broker.port) for argv in spec.get("commands", [])]
        report["imports"] = {
            name: _import_times(argv, spec.get("import_runs", 0), spec.get("import_module", "everest_py.framework.cli"))
            for name, argv in spec.get("import_argv", {}).items()
        }
    finally:
        broker.stop()
    report["runs"] = runs
    report["data_dir"] = _listing(DATA)
    report["home"] = _listing(root / "root")
    report["tmp"] = _listing(root / "tmp")
    report["run_dir"] = _listing(RUN)
    return report


def sil_overlay() -> dict[str, Any]:
    """The user-config overlay of the sil-ac run: a free port for the JSON-RPC API (not 8080)."""
    from everest_py.testing import free_port

    return {"active_modules": {"rpc_api": {"config_module": {"websocket_port": free_port()}}}}


SIM_RUN = RUN / "rehearsal" / "sim"
SIM_HARDWARE = ("board", "meter-tty")


def board_overlay(config: str = "tarragon-ac.yaml") -> dict[str, Any]:
    """config/sim/<config> as a user-config overlay that moves only the hardware into the simulator.

    The template also moves the charger's files (state, token list, charger info) into its work
    folder; here those keep the paths the shipped config gives them, which is what the rehearsal
    is about.
    """
    import yaml

    from everest_bsp.sim.overlay import render
    from everest_py.testing import free_port

    elsewhere = "/rehearsal-not-staged"
    text = render(
        (REPO / "config" / "sim" / config).read_text(),
        {"RUN": str(SIM_RUN), "REPO": elsewhere, "RPC_PORT": str(free_port())},
    )
    overlay: dict[str, Any] = yaml.safe_load(text)
    keep = tuple(str(SIM_RUN / h) for h in SIM_HARDWARE)

    def moves_a_file(value: Any) -> bool:
        return isinstance(value, str) and (
            value.startswith(elsewhere) or (value.startswith(str(SIM_RUN)) and not value.startswith(keep))
        )

    modules = overlay["active_modules"]
    for mid in list(modules):
        entry = modules[mid]
        sections = [entry.get("config_module") or {}, *(entry.get("config_implementation") or {}).values()]
        for section in sections:
            for key in [k for k, v in section.items() if moves_a_file(v)]:
                del section[key]
        for impl, section in list((entry.get("config_implementation") or {}).items()):
            if not section:
                del entry["config_implementation"][impl]
        for key in ("config_module", "config_implementation"):
            if key in entry and not entry[key]:
                del entry[key]
        if not entry:
            del modules[mid]
    return overlay


def staged_argv(staged: Staged, verbose: bool = False) -> list[str]:
    """How the target starts the stack: the console script under the staged interpreter, isolated."""
    return [str(staged.python), "-I", *(["-v"] if verbose else []), str(staged.script)]


def venv_argv() -> list[str]:
    """The same from the development venv (editable installs of app/ and bsp/)."""
    return [sys.executable, "-I", str(Path(sys.executable).parent / "everest-py")]


def session_dir(basetemp: Path) -> Path:
    """A directory every pytest-xdist worker of one test session shares (basetemp without xdist)."""
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp


def shared(directory: Path, name: str, produce: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``produce()`` once per ``directory`` (across processes, under a lock); its JSON afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = directory / f"{name}.json"
        if path.exists():
            data: dict[str, Any] = json.loads(path.read_text())
        else:
            try:
                data = produce()
            except Exception as err:  # the first failure is the one worth reading: every later user gets it
                data = {"__failed__": f"{type(err).__name__}: {err}"}
            path.write_text(json.dumps(data))
        if "__failed__" in data:
            raise RuntimeError(f"{name} failed (once for this session): {data['__failed__']}")
        return data


def stage_once(directory: Path) -> Staged:
    """One staged root per test session (the rehearsal and the unit checks share it)."""
    return Staged.load(shared(directory, "staged", lambda: stage(directory / "rehearsal").dump()))


if __name__ == "__main__":
    print(json.dumps(run_inside(json.loads(sys.argv[1]))))
