# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""A qemuarm64 charger as RAUC sees it, run by Debian's real RAUC 1.8, and bundles built as the Yocto build does.

The charger:

- the repository's ``system.conf`` of the machine, with only the slot devices rewritten (two
  ext4 images in a work directory instead of ``/dev/vda2`` and ``/dev/vda3``);
- ``rauc service`` on a private dbus-daemon, told which slot is booted
  (``--override-boot-slot``), since nothing here boots;
- a root of its own: the service runs chrooted in a private mount namespace.  ``/etc`` and
  ``/usr`` are the host's with a read-only layer on top that holds the files at the paths the
  configuration names: ``fw_env.config`` of the machine, unchanged (RAUC's U-Boot backend runs
  ``fw_printenv``/``fw_setenv``, which read ``/etc/fw_env.config``), the keyring, and
  ``update-health`` as the pre-install handler.  The directories the charger writes are its own:
  the two U-Boot environment copies where ``fw_env.config`` puts them (the test makes their
  directory; on the charger a mount of the boot partition has to, which test_ota.py checks
  apart), the data directory (``/data/rauc``, with update-health's ``confirmed`` markers) and
  ``/mnt`` (RAUC's mount prefix).  ``/dev``, ``/proc`` and ``/sys`` are the host's (loop devices for the bundle), and
  the work directory appears at its own path, so bundle paths mean the same inside and out.
  No file of the host changes, apart from the lock file of ``fw_printenv`` in ``/var/lock``
  when the test reads the environment.

The environment starts as the U-Boot recipe makes it (``everest-py-ab.env`` through
``mkenvimage -r`` with the recipe's size) in each copy ``fw_env.config`` names, so RAUC reads it
only if ``fw_env.config`` agrees with the recipe on the size and on the redundant copies.

Bundles follow meta-rauc's ``bundle`` class with the values of ``everest-py-bundle.bb``: the
manifest's ``[update]`` (compatible per machine, version and description from DISTRO_VERSION),
``[bundle] format`` unless plain, and ``[image.rootfs]`` with the image file name and, for verity,
``adaptive``.  The image is a small ext4 made with ``mkfs.ext4 -d`` whose ``/etc/os-release``
tells bundles apart.  Keys are made by the shell block of docs/yocto.md "Signing and keys", run
as it stands with ``HOME`` in a temporary directory.
"""

from __future__ import annotations

import datetime
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import uboot
from .layers import MACHINES

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes-core"
BUNDLE_RECIPE = RECIPES / "bundles" / "everest-py-bundle.bb"
UPDATE_HEALTH = RECIPES / "everest-py-update" / "files" / "update-health"
UBOOT_FILES = RECIPES / "u-boot" / "files"
UBOOT_RECIPE = RECIPES / "u-boot" / "u-boot-everest-py.inc"
BOOT_CMD = UBOOT_FILES / "boot.cmd"
IMAGE_RECIPE = RECIPES / "images" / "everest-py-image.bb"
FSTAB = RECIPES / "base-files" / "files" / "fstab"
DISTRO_CONF = REPO / "conf" / "distro" / "everest-py.conf"
DOCS = REPO / "docs" / "yocto.md"
MACHINE = "qemuarm64"

SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Tools beside rauc, and the Debian package of each (the test needs them all once rauc is there).
TOOLS = {
    "dbus-daemon": "dbus",
    "mksquashfs": "squashfs-tools",
    "fw_printenv": "libubootenv-tool",
    "mkenvimage": "u-boot-tools",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "dumpe2fs": "e2fsprogs",
    "unshare": "util-linux",
    "chroot": "coreutils",
    "openssl": "openssl",
}
SLOT_SIZE = 16 * 1024 * 1024
IMAGE_SIZE = "8M"
# Incompressible bytes in each image: a verity bundle's squashfs must be larger than 4096 bytes.
PAYLOAD_SIZE = 64 * 1024


def missing() -> str | None:
    """Why the OTA tests cannot run here, or None."""
    if shutil.which("rauc") is None:
        return "rauc is missing: apt-get install rauc squashfs-tools dbus libubootenv-tool e2fsprogs"
    return None


def check_tools() -> None:
    """Fail, naming the package, if a tool the tests need beside rauc is missing."""
    for name in TOOLS:
        tool(name)


def tool(name: str) -> str:
    """The path of a tool (sbin included); fails, naming the package, when it is missing."""
    found = shutil.which(name) or shutil.which(name, path=SBIN_PATH)
    assert found is not None, f"{name} is missing: apt-get install {TOOLS.get(name, name)}"
    return found


def run(
    *argv: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a tool; unless ``check`` is false, fail with its output when it fails."""
    proc = subprocess.run(
        [tool(str(argv[0])), *(str(a) for a in argv[1:])],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )
    if check and proc.returncode != 0:
        command = shlex.join(str(a) for a in argv)
        raise AssertionError(f"{command} exited with {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


# --- the repository's files ---------------------------------------------------------------------


def _bitbake(text: str, name: str) -> str | None:
    """The value of the first one-line ``NAME = "..."`` (or ``?=``, ``??=``) in a recipe or conf."""
    m = re.search(rf'^{re.escape(name)}\s*(?:\?\?=|\?=|=)\s*"([^"]*)"\s*$', text, re.MULTILINE)
    return None if m is None else m.group(1)


def _expand(value: str, variables: dict[str, str]) -> str:
    def var(m: re.Match[str]) -> str:
        assert m.group(1) in variables, f"cannot expand ${{{m.group(1)}}} in {value!r}"
        return variables[m.group(1)]

    return re.sub(r"\$\{(\w+)\}", var, value)


@dataclass(frozen=True)
class Bundle:
    """What everest-py-bundle.bb puts in the manifest for one machine (see the module doc)."""

    compatible: str
    version: str
    description: str
    machine: str
    basename: str
    format: str
    slot: str
    filename: str
    adaptive: str | None

    @classmethod
    def of(cls, machine: str, bundle_format: str | None = None) -> Bundle:
        recipe = BUNDLE_RECIPE.read_text()
        distro_version = _bitbake(DISTRO_CONF.read_text(), "DISTRO_VERSION")
        assert distro_version is not None, f"no DISTRO_VERSION in {DISTRO_CONF}"
        variables = {"MACHINE": machine, "DISTRO_VERSION": distro_version}

        def value(name: str) -> str:
            found = _bitbake(recipe, f"{name}:{machine}")
            if found is None:
                found = _bitbake(recipe, name)
            assert found is not None, f"no {name} in {BUNDLE_RECIPE}"
            return _expand(found, variables)

        fmt = bundle_format or value("RAUC_BUNDLE_FORMAT")
        (slot,) = value("RAUC_BUNDLE_SLOTS").split()
        image = value(f"RAUC_SLOT_{slot}")
        fstype = re.search(rf'^RAUC_SLOT_{slot}\[fstype\] = "(\w+)"', recipe, re.MULTILINE)
        assert fstype is not None, f"no RAUC_SLOT_{slot}[fstype] in {BUNDLE_RECIPE}"
        # The anonymous python sets [adaptive] for one format.
        adaptive = re.search(
            rf"getVar\('RAUC_BUNDLE_FORMAT'\) == '(\w+)':\s*"
            rf"d\.setVarFlag\('RAUC_SLOT_{slot}', 'adaptive', '([^']+)'\)",
            recipe,
        )
        assert adaptive is not None, f"no [adaptive] rule in {BUNDLE_RECIPE}"
        return cls(
            machine=machine,
            basename=value("BUNDLE_BASENAME"),
            compatible=value("RAUC_BUNDLE_COMPATIBLE"),
            version=value("RAUC_BUNDLE_VERSION"),
            description=value("RAUC_BUNDLE_DESCRIPTION"),
            format=fmt,
            slot=slot,
            # meta-rauc: <image><IMAGE_MACHINE_SUFFIX><IMAGE_NAME_SUFFIX>.<fstype>, the defaults of
            # those suffixes being -${MACHINE} and .rootfs.
            filename=f"{image}-{machine}.rootfs.{fstype.group(1)}",
            adaptive=adaptive.group(2) if adaptive.group(1) == fmt else None,
        )

    def manifest(self, build: str) -> str:
        """manifest.raucm as meta-rauc's write_manifest() writes it."""
        text = "[update]\n"
        text += f"compatible={self.compatible}\nversion={self.version}\n"
        text += f"description={self.description}\nbuild={build}\n\n"
        if self.format != "plain":
            text += f"[bundle]\nformat={self.format}\n\n"
        text += f"[image.{self.slot}]\nfilename={self.filename}\n"
        if self.adaptive is not None:
            text += f"adaptive={self.adaptive}\n"
        return text + "\n"


def uboot_env_size() -> int:
    """EVEREST_PY_UBOOT_ENV_SIZE of the U-Boot recipe: the size mkenvimage gives the first environment."""
    size = _bitbake(UBOOT_RECIPE.read_text(), "EVEREST_PY_UBOOT_ENV_SIZE:everest-py")
    assert size is not None, f"no EVEREST_PY_UBOOT_ENV_SIZE in {UBOOT_RECIPE}"
    return int(size, 0)


def uboot_config() -> dict[str, str]:
    """The options everest-py-env.cfg sets (quotes removed); ``# CONFIG_X is not set`` is left out."""
    text = (UBOOT_FILES / "everest-py-env.cfg").read_text()
    return {name: value.strip('"') for name, value in re.findall(r"^(CONFIG_\w+)=(.*)$", text, re.MULTILINE)}


def image_boot_files(machine: str) -> list[str]:
    """IMAGE_BOOT_FILES of the image for ``machine``: what wic puts on the boot partition."""
    value = _bitbake(IMAGE_RECIPE.read_text(), f"IMAGE_BOOT_FILES:{machine}")
    assert value is not None, f"no IMAGE_BOOT_FILES:{machine} in {IMAGE_RECIPE}"
    return value.split()


def mount_points(machine: str) -> set[str]:
    """Where the image of ``machine`` mounts file systems: the fstab of base-files and ``Where=``
    of the mount units in the layers, but for those in a directory named after another machine.

    (The qemuarm64 wks cannot add any: the image builds it with ``--no-fstab-update``.)
    """
    points = {
        line.split()[1]
        for line in FSTAB.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#") and len(line.split()) > 1
    }
    others = set(MACHINES) - {machine}
    for layer in (RECIPES, REPO / "meta-everest-py"):
        for unit in layer.rglob("*.mount"):
            if others.isdisjoint(unit.relative_to(layer).parts):
                points.update(re.findall(r"^Where=(\S+)$", unit.read_text(), re.MULTILINE))
    return points


def boot_attempts() -> str:
    """The attempts boot.cmd gives a slot (its default for BOOT_A_LEFT, also its new round)."""
    defaults: set[str] = set(re.findall(r"setenv BOOT_[AB]_LEFT (\d+)", BOOT_CMD.read_text()))
    assert len(defaults) == 1, f"boot.cmd sets BOOT_x_LEFT to {defaults}"
    return defaults.pop()


def next_boot(env: dict[str, str]) -> str | None:
    """The slot boot.cmd boots with this environment: the first of BOOT_ORDER with attempts left.

    (test_uboot.py runs boot.cmd itself in U-Boot; this is its choice, for reading RAUC's writes.)
    """
    for slot in env.get("BOOT_ORDER", "A B").split():
        if int(env.get(f"BOOT_{slot}_LEFT", boot_attempts())) > 0:
            return slot
    return None


def docs_key_commands() -> str:
    """The shell block of docs/yocto.md "Signing and keys" that makes development keys."""
    text = DOCS.read_text()
    section = re.search(r"^## Signing and keys\n(.*?)^## ", text, re.MULTILINE | re.DOTALL)
    assert section is not None, f"no 'Signing and keys' section in {DOCS}"
    block = re.search(r"^```sh\n(.*?)^```", section.group(1), re.MULTILINE | re.DOTALL)
    assert block is not None, "no sh block in 'Signing and keys'"
    return block.group(1)


def docs_check_command() -> str:
    """The bundle check docs/yocto.md gives after the key commands ("To check a bundle: `...`")."""
    m = re.search(r"To check a bundle:\s*`(rauc info [^`]+)`", DOCS.read_text())
    assert m is not None, f"no bundle check in {DOCS}"
    return m.group(1)


def docs_rollback_command() -> str:
    """The rauc command of docs/yocto.md "Roll back by hand" that boots the other slot."""
    section = re.search(r"^### Roll back by hand\n(.*?)^#", DOCS.read_text(), re.MULTILINE | re.DOTALL)
    assert section is not None, f"no 'Roll back by hand' in {DOCS}"
    m = re.search(r"^(rauc status mark-active [^&#\n]*?)\s*(?:&&|#|$)", section.group(1), re.MULTILINE)
    assert m is not None, "no 'rauc status mark-active' in 'Roll back by hand'"
    return m.group(1)


@dataclass(frozen=True)
class Keys:
    """The files of the docs' table: keyring, signing certificate, signing key."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.cert.pem"

    @property
    def cert(self) -> Path:
        return self.dir / "development-1.cert.pem"

    @property
    def key(self) -> Path:
        return self.dir / "development-1.key.pem"


def make_keys(*homes: Path) -> list[Keys]:
    """Run the docs' key commands once per home (at the same time: RSA 4096 takes seconds)."""
    commands = docs_key_commands()
    procs = []
    for home in homes:
        home.mkdir(parents=True, exist_ok=True)
        env = {"HOME": str(home), "PATH": os.environ.get("PATH", SBIN_PATH)}
        procs.append(
            subprocess.Popen(
                ["sh", "-e", "-c", commands],
                cwd=home,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    keys = []
    for home, proc in zip(homes, procs, strict=True):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"the key commands of docs/yocto.md failed:\n{out[-3000:]}"
        found = sorted(home.rglob("ca.cert.pem"))
        assert len(found) == 1, f"the key commands made {found}"
        k = Keys(found[0].parent)
        for path in (k.ca, k.cert, k.key):
            assert path.is_file(), f"the key commands made no {path.name}"
        keys.append(k)
    return keys


# --- bundles ------------------------------------------------------------------------------------


def os_release(bundle: Bundle) -> str:
    """An /etc/os-release that names the bundle's version and this one build."""
    return f"ID=everest-py\nVERSION_ID={bundle.version}\nBUILD_ID={uuid.uuid4().hex}\n"


def build_bundle(workdir: Path, keys: Keys, bundle: Bundle, os_release_text: str) -> Path:
    """A signed bundle in ``workdir`` (which must not exist): its image holds ``os_release_text``."""
    src = workdir / "rootfs"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "os-release").write_text(os_release_text)
    (src / "etc" / "payload").write_bytes(os.urandom(PAYLOAD_SIZE))
    content = workdir / "content"  # rauc bundle rewrites the manifest in here: one per bundle
    content.mkdir()
    run("mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", src, content / bundle.filename, IMAGE_SIZE)
    build = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
    (content / "manifest.raucm").write_text(bundle.manifest(build))
    out = workdir / f"{bundle.basename}-{bundle.machine}.raucb"  # the name of the deployed link
    run("rauc", "bundle", f"--cert={keys.cert}", f"--key={keys.key}", content, out)
    return out


def ext4_file(image: Path, path: str) -> str:
    """A file of an ext4 image, read with debugfs."""
    return run("debugfs", "-R", f"cat {path}", image).stdout


def ext4_size(image: Path) -> int:
    """Block count times block size of an ext4 image (what resize2fs grows)."""
    header = run("dumpe2fs", "-h", image).stdout
    fields = dict(re.findall(r"^(Block count|Block size):\s+(\d+)$", header, re.MULTILINE))
    return int(fields["Block count"]) * int(fields["Block size"])


# --- the charger ----------------------------------------------------------------------------------


def _ini_value(text: str, section: str, key: str) -> str:
    body = re.search(rf"^\[{re.escape(section)}\]\n(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    assert body is not None, f"no [{section}]"
    m = re.search(rf"^{re.escape(key)}=(.*)$", body.group(1), re.MULTILINE)
    assert m is not None, f"no {key} in [{section}]"
    return m.group(1)


def pre_install_handler(conf: Path) -> str:
    return _ini_value(conf.read_text(), "handlers", "pre-install")


@dataclass(frozen=True)
class EnvCopy:
    """One line of fw_env.config: where a copy of the environment is, and its size."""

    path: str
    offset: int
    size: int


def fw_env_config(machine: str) -> str:
    return (RECIPES / "everest-py-update" / "files" / machine / "fw_env.config").read_text()


def env_copies(fw_env: str) -> list[EnvCopy]:
    """The copies of a fw_env.config (device or file, offset, size; further fields ignored)."""
    copies = [
        EnvCopy(fields[0], int(fields[1], 0), int(fields[2], 0))
        for line in fw_env.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
        for fields in [line.split()]
    ]
    assert 1 <= len(copies) <= 2, f"fw_env.config names {len(copies)} copies"
    return copies


class Charger:
    """The charger of the module doc in ``workdir``: start(), then rauc(...), env(), slots, stop()."""

    def __init__(self, workdir: Path, keys: Keys, machine: str = MACHINE) -> None:
        self.workdir = workdir
        self.root = workdir / "root"
        self.layer = workdir / "layer"
        self.slots = {"A": workdir / "slots" / "rootfs.a.img", "B": workdir / "slots" / "rootfs.b.img"}
        self.slot_os_release = {name: f"ID=everest-py\nVERSION_ID=slot-{name}\n" for name in self.slots}
        self.dbus_socket = workdir / "dbus.sock"
        self.binds: list[Path] = []  # host directories bound into the root (no merged /usr)
        self.dbus: subprocess.Popen[bytes] | None = None
        self.service: subprocess.Popen[bytes] | None = None
        for ch in ",:":  # overlayfs options
            assert ch not in str(workdir), f"{ch!r} in {workdir} would break the overlay options"

        # system.conf: only the slot devices point elsewhere.
        repo_conf = (RECIPES / "rauc" / "files" / machine / "system.conf").read_text()
        bootnames = {}

        def device(m: re.Match[str]) -> str:
            section = m.group(1)
            name = _ini_value(repo_conf, section, "bootname")
            bootnames[section] = name
            body = re.sub(r"^device=.*$", f"device={self.slots[name]}", m.group(2), flags=re.MULTILINE)
            return f"[{section}]\n{body}"

        conf = re.sub(r"^\[(slot\.[^\]]+)\]\n(.*?)(?=^\[|\Z)", device, repo_conf, flags=re.MULTILINE | re.DOTALL)
        assert sorted(bootnames.values()) == sorted(self.slots), f"slots of system.conf: {bootnames}"
        self.conf = workdir / "system.conf"
        self.conf.write_text(conf)
        # RAUC's name of each slot (rootfs.0) by boot name.
        self.slot_name = {name: section.removeprefix("slot.") for section, name in bootnames.items()}
        self.data_dir = self.root / _ini_value(conf, "system", "data-directory").lstrip("/")
        self.confirmed = self.data_dir / "confirmed"  # update-health's markers

        # The read-only layer over /etc and /usr.
        self._put(_ini_value(conf, "keyring", "path"), keys.ca.read_bytes())
        self._put(_ini_value(conf, "handlers", "pre-install"), UPDATE_HEALTH.read_bytes(), mode=0o755)
        fw_env = fw_env_config(machine)
        self._put("/etc/fw_env.config", fw_env.encode())
        self.env_copies = env_copies(fw_env)
        for top in self.layer.iterdir():
            assert top.name in ("etc", "usr"), f"{top}: only /etc and /usr get a layer"
        for name in ("etc", "usr"):
            (self.layer / name).mkdir(exist_ok=True)
        # fw_env.config with the copies where the host sees them, for reading and seeding.
        self.host_fw_env = workdir / "fw_env.host.config"
        self.host_fw_env.write_text(
            "".join(f"{self._host(c.path)} {c.offset:#x} {c.size:#x}\n" for c in self.env_copies)
        )
        self._make_root()

    def _host(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def _put(self, path: str, data: bytes, mode: int = 0o644) -> None:
        target = self.layer / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)

    def _make_root(self) -> None:
        for name in ("dev", "proc", "sys", "etc", "usr", "tmp", "mnt", "run/lock", "var"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        (self.root / "var" / "lock").symlink_to("../run/lock")
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            host = Path("/") / name
            if host.is_symlink():  # merged /usr
                (self.root / name).symlink_to(os.readlink(host))
            elif host.is_dir():
                (self.root / name).mkdir()
                self.binds.append(host)
        self.data_dir.mkdir(parents=True)
        for copy in self.env_copies:
            self._host(copy.path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / self.workdir.relative_to("/")).mkdir(parents=True)

    # --- state -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Fresh slots (A and B each with its own os-release), environment and confirmed markers."""
        self.slots["A"].parent.mkdir(exist_ok=True)
        for name, image in self.slots.items():
            src = self.workdir / f"slot-{name}"
            shutil.rmtree(src, ignore_errors=True)
            (src / "etc").mkdir(parents=True)
            (src / "etc" / "os-release").write_text(self.slot_os_release[name])
            image.unlink(missing_ok=True)
            run("mkfs.ext4", "-q", "-F", "-L", f"rootfs-{name}", "-d", src, image, f"{SLOT_SIZE // 1024}k")
        # As u-boot-everest-py.inc makes it (mkenvimage -r, its size); fw_printenv and fw_setenv
        # read it with the copies and sizes of fw_env.config.
        env = uboot.env_image(self.workdir, uboot.ab_env(), uboot_env_size(), redundant=True)
        for copy in self.env_copies:
            with self._host(copy.path).open("wb") as f:
                f.seek(copy.offset)
                f.write(env)
        shutil.rmtree(self.confirmed, ignore_errors=True)
        self.confirmed.mkdir()
        for name in self.slots:
            (self.confirmed / name).touch()

    def env(self) -> dict[str, str]:
        out = run("fw_printenv", "-c", self.host_fw_env).stdout
        return dict(line.partition("=")[::2] for line in out.splitlines())

    def set_env(self, name: str, value: str) -> None:
        run("fw_setenv", "-c", self.host_fw_env, name, value)

    # --- processes -------------------------------------------------------------------------------

    def _client_env(self) -> dict[str, str]:
        return {
            "PATH": SBIN_PATH,
            "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={self.dbus_socket}",
            "LANG": "C.UTF-8",
        }

    def rauc(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A rauc client command on the private bus."""
        return run("rauc", *args, env=self._client_env(), check=check)

    def start(self, booted: str = "A") -> None:
        dbus_conf = self.workdir / "dbus.conf"
        dbus_conf.write_text(
            '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
            "<busconfig>\n  <type>system</type>\n"
            f"  <listen>unix:path={self.dbus_socket}</listen>\n  <auth>EXTERNAL</auth>\n"
            '  <policy context="default">\n'
            '    <allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/>\n'
            "  </policy>\n</busconfig>\n"
        )
        self.dbus_log = (self.workdir / "dbus.log").open("wb")
        self.dbus = subprocess.Popen(
            [tool("dbus-daemon"), f"--config-file={dbus_conf}", "--nofork", "--nopidfile"],
            stdout=self.dbus_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait(self.dbus_socket.exists, self.dbus, "dbus-daemon", self.workdir / "dbus.log")

        root = shlex.quote(str(self.root))
        mounts = [
            *(f"mount --rbind /{name} {root}/{name}" for name in ("dev", "proc", "sys")),
            *(f"mount --bind {shlex.quote(str(b))} {root}{shlex.quote(str(b))}" for b in self.binds),
            *(
                f"mount -t overlay overlay -o ro,lowerdir={shlex.quote(str(self.layer / name))}:/{name} {root}/{name}"
                for name in ("etc", "usr")
            ),
            f"mount --bind {shlex.quote(str(self.workdir))} {root}{shlex.quote(str(self.workdir))}",
        ]
        service = [
            "chroot",
            str(self.root),
            "rauc",
            "service",
            f"--conf={self.conf}",
            f"--override-boot-slot={booted}",
        ]
        script = "set -e\n" + "\n".join(mounts) + "\nexec " + shlex.join(service) + "\n"
        self.service_log_path = self.workdir / "service.log"
        self.service_log = self.service_log_path.open("wb")
        # unshare execs the shell, the shell execs chroot, chroot execs rauc: one PID throughout.
        self.service = subprocess.Popen(
            [tool("unshare"), "--mount", "--propagation", "private", "sh", "-c", script],
            env=self._client_env(),
            stdout=self.service_log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait(
            lambda: self.rauc("status", check=False).returncode == 0,
            self.service,
            "rauc service",
            self.service_log_path,
        )

    @staticmethod
    def _wait(
        ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 15.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not ready within {timeout} s:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)

    def service_log_text(self) -> str:
        return self.service_log_path.read_text(errors="replace")

    def stop(self) -> None:
        for proc in (self.service, self.dbus):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for name in ("service_log", "dbus_log"):
            f = getattr(self, name, None)
            if f is not None:
                f.close()
