# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""systemd units of both layers: ``systemd-analyze verify`` in a root laid out as the image.

The root is the rehearsal's staged root (the Python stack with ``/usr/bin/everest-py``) plus every
file the recipes' ``do_install`` puts into place (``install ... ${WORKDIR}/x ${D}...`` and
``ln -s``), with merged /usr (the distro has usrmerge).  ``verify`` checks that every Exec*
command exists in that root; commands that come from other recipes (mkdir, rm, mosquitto, ...)
are the host's real binaries, copied to the same path.  Units our drop-ins extend are the host's
where it has them (mosquitto.service of Debian's mosquitto, which is upstream's unit as
meta-networking installs it; systemd's targets); the others get a stand-in that only names the
unit (``stand_in``: rauc.service and rauc-mark-good.service, which Debian's rauc package does not
ship, and openssh's sshdgenkeys.service, which only Yocto has), so that the drop-in itself is
parsed and its commands are checked.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import rehearsal

REPO = rehearsal.REPO
LAYERS = (REPO / "meta-everest-py", REPO / "recipes-core")
UNIT_SUFFIXES = (".service", ".timer", ".mount", ".target", ".socket", ".path")
UNITDIR = Path("usr/lib/systemd/system")
HOST_UNITDIRS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))
# Where bitbake variables point with usrmerge (poky's defaults).
VARIABLES = {
    "${systemd_system_unitdir}": "/usr/lib/systemd/system",
    "${systemd_unitdir}": "/usr/lib/systemd",
    "${libexecdir}": "/usr/libexec",
    "${sysconfdir}": "/etc",
    "${nonarch_libdir}": "/usr/lib",
    "${localstatedir}": "/var",
    "${bindir}": "/usr/bin",
    "${sbindir}": "/usr/sbin",
    "${datadir}": "/usr/share",
}
# Warnings of systemd-analyze that cannot be helped here, each with its reason (none so far).
ALLOWED_WARNINGS: dict[str, str] = {}


def recipes() -> list[Path]:
    return sorted(p for top in LAYERS for ext in ("*.bb", "*.bbappend", "*.inc") for p in top.rglob(ext))


def _expand(path: str) -> str | None:
    for var, value in VARIABLES.items():
        path = path.replace(var, value)
    return None if "${" in path else path


def installs(recipe: Path) -> Iterator[tuple[Path, str]]:
    """(source file, target path) of the ``install ${WORKDIR}/...`` lines of ``recipe``."""
    text = recipe.read_text().replace("\\\n", " ")
    for m in re.finditer(r"\binstall\s+(?:-D\s+)?-m\s+\d+\s+\$\{WORKDIR\}/(\S+)\s+\$\{D\}(\S+)", text):
        target = _expand(m.group(2))
        if target is None:
            continue
        found = sorted((recipe.parent / "files").rglob(m.group(1)))
        if found:
            yield found[0], target


def links(recipe: Path) -> Iterator[tuple[str, str]]:
    """(link text, target path) of the ``ln -s`` lines of ``recipe``."""
    text = recipe.read_text().replace("\\\n", " ")
    for m in re.finditer(r"\bln\s+-s\s+(\S+)\s+\$\{D\}(\S+)", text):
        source, target = _expand(m.group(1)), _expand(m.group(2))
        if source is not None and target is not None:
            yield source, target


def unit_sources() -> list[Path]:
    """Unit files and drop-ins (.conf with a unit section) in the layers' files/ directories."""
    found = []
    for top in LAYERS:
        for path in top.rglob("files/**/*"):
            if path.suffix in UNIT_SUFFIXES or (
                path.suffix == ".conf"
                and re.search(r"^\[(Unit|Service|Timer|Install|Mount|Socket)\]", path.read_text(), re.M)
            ):
                found.append(path)
    return sorted(found)


def stand_in(name: str) -> str:
    """A base unit for drop-ins whose real unit comes from a recipe this host has no package of."""
    return (
        "[Unit]\n"
        f"Description=stand-in for {name} of another recipe, for checking drop-ins\n\n"
        "[Service]\nType=oneshot\nExecStart=/usr/bin/true\n"
    )


def _exec_paths(unit_text: str) -> set[str]:
    paths = set()
    for m in re.finditer(r"^Exec\w*=\s*(\S+)", unit_text, re.MULTILINE):
        path = m.group(1).lstrip("-@:+!|")
        if path.startswith("/"):
            paths.add(path)
    return paths


def _host_file(path: str) -> Path | None:
    p = Path(path)
    for candidate in (p, Path("/usr") / p.relative_to("/") if not path.startswith("/usr/") else p):
        if candidate.is_file():
            return candidate.resolve()
    return None


class VerifyRoot:
    """The image-like root and the units to verify in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ours: list[str] = []  # unit names from our layers
        self.bases: dict[str, str] = {}  # base unit of a drop-in: where it came from
        self.copied: list[str] = []  # host binaries copied in
        self.missing: list[str] = []  # commands found nowhere

    def unitdir(self) -> Path:
        return self.root / UNITDIR

    def build(self) -> VerifyRoot:
        for recipe in recipes():
            for source, target in installs(recipe):
                dest = self.root / target.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest)
                if target.startswith("/usr/libexec/") or target.startswith("/usr/bin/"):
                    dest.chmod(0o755)
            for text, target in links(recipe):
                dest = self.root / target.lstrip("/")
                if not dest.is_symlink() and not dest.exists():
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.symlink_to(text)
        for d in ("bin", "sbin", "lib"):  # usrmerge
            if not (self.root / d).exists():
                (self.root / d).symlink_to(f"usr/{d}")
        units = self.unitdir()
        self.ours = sorted(p.name for p in units.iterdir() if p.suffix in UNIT_SUFFIXES and not p.is_symlink())
        for dropins in sorted(units.glob("*.d")):
            base = dropins.name.removesuffix(".d")
            if (units / base).exists():
                self.bases.setdefault(base, "ours")
                continue
            host = next((d / base for d in HOST_UNITDIRS if (d / base).is_file()), None)
            if host is not None:
                shutil.copyfile(host, units / base)
                self.bases[base] = f"host ({host})"
            else:
                (units / base).write_text(stand_in(base))
                self.bases[base] = "stand-in"
        # systemd's own units (targets, and what they pull in) from the host's systemd.
        for host_dir in HOST_UNITDIRS:
            if host_dir.is_dir():
                for unit in host_dir.glob("*.target"):
                    if not (units / unit.name).exists():
                        shutil.copyfile(unit, units / unit.name)
        for name in self.units():
            for path in sorted(_exec_paths(self.text_of(name))):
                self._provide(path)
        return self

    def text_of(self, name: str) -> str:
        units = self.unitdir()
        parts = [(units / name).read_text()]
        parts += [p.read_text() for p in sorted((units / f"{name}.d").glob("*.conf"))]
        return "\n".join(parts)

    def _provide(self, path: str) -> None:
        inside = self.root / path.lstrip("/")
        if inside.exists():
            return
        host = _host_file(path)
        if host is None:
            self.missing.append(path)
            return
        real = self.root / Path(path).relative_to("/")
        real = self.root / "usr" / real.relative_to(self.root) if not path.startswith("/usr/") else real
        real.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(host, real)
        self.copied.append(path)

    def units(self) -> list[str]:
        return sorted({*self.ours, *self.bases})


@pytest.fixture(scope="session")
def verify_root(tmp_path_factory: pytest.TempPathFactory) -> VerifyRoot:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing: apt-get install systemd")
    staged = rehearsal.stage_once(rehearsal.session_dir(tmp_path_factory.getbasetemp()))
    root = tmp_path_factory.mktemp("units") / "root"
    shutil.copytree(staged.root, root, symlinks=True)
    return VerifyRoot(root).build()


def test_every_unit_file_of_the_layers_is_installed_by_a_recipe() -> None:
    installed = {source.resolve() for recipe in recipes() for source, _ in installs(recipe)}
    sources = unit_sources()
    assert len(sources) >= 8, sources
    assert [str(p.relative_to(REPO)) for p in sources if p.resolve() not in installed] == []


def test_units_verify_without_warnings(verify_root: VerifyRoot) -> None:
    assert {"everest-py.service", "everest-py-boot-deadline.timer", "everest-py-data.service"} <= set(verify_root.ours)
    assert verify_root.missing == [], "commands of the units that neither the layers nor this host provide"
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            f"--root={verify_root.root}",
            "--man=no",
            "--generators=no",
            *verify_root.units(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    unexpected = [line for line in lines if not any(re.search(p, line) for p in ALLOWED_WARNINGS)]
    assert unexpected == [], f"units: {verify_root.units()}; bases of drop-ins: {verify_root.bases}"
    assert result.returncode == 0


def test_verify_catches_a_missing_command_and_an_unknown_key(verify_root: VerifyRoot, tmp_path: Path) -> None:
    units = verify_root.unitdir()
    broken = units / "rehearsal-broken.service"
    broken.write_text("[Service]\nExecStart=/usr/bin/not-there\nNoSuchKey=1\n")
    try:
        result = subprocess.run(
            ["systemd-analyze", "verify", f"--root={verify_root.root}", "--man=no", "--generators=no", broken.name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        broken.unlink()
    assert "/usr/bin/not-there is not executable" in result.stderr
    assert "Unknown key 'NoSuchKey'" in result.stderr


def test_the_tmpfiles_entries_apply_to_the_root(verify_root: VerifyRoot) -> None:
    if shutil.which("systemd-tmpfiles") is None:
        pytest.skip("systemd-tmpfiles is missing: apt-get install systemd")
    conf = verify_root.root / "usr" / "lib" / "tmpfiles.d" / "everest-py.conf"
    result = subprocess.run(
        ["systemd-tmpfiles", f"--root={verify_root.root}", "--create", conf.name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    data = verify_root.root / "var" / "lib" / "everest"
    assert (data / "user-config").is_dir()
    assert (data / "config").readlink() == Path("/etc/everest")
