# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""A real U-Boot in QEMU that runs the repository's A/B boot script, one boot per QEMU start.

The U-Boot is Debian's build for QEMU's ``virt`` machine (package u-boot-qemu, 2023.01,
``/usr/lib/u-boot/qemu_arm64/u-boot.bin``).  Its configuration (``config.qemu_arm64`` in the
package's documentation) differs from ours where the environment lives:

- it keeps one 256 KiB copy at the start of the second parallel flash bank
  (``CONFIG_ENV_IS_IN_FLASH``, ``CONFIG_ENV_ADDR=0x4000000``: QEMU's pflash unit 1), not two
  files on the boot partition, and loads it while it starts;
- it has no ``env load`` (``CONFIG_CMD_NVEDIT_LOAD`` is not set): the script's first command
  only prints the usage of ``env`` and the script goes on with the environment loaded at start.

The flash bank is a file kept between the boots.  QEMU 7.2 of Debian 12 has a bug in the flash's
buffered write (QEMU issue 2343): U-Boot's ``saveenv`` erases the sector, writes the first
buffer(s), not all of them in full, and then reports a timeout.  What reached the flash is part
of U-Boot's own export: the CRC, the sorted ``name=value`` strings and some of the zero padding.
``Board.settle`` completes that write, and only when the CRC U-Boot computed matches the text
that reached the flash followed by zeros, i.e. when the flash then holds byte for byte what
U-Boot meant to save.  So the environments the tests seed stay small (the few variables the A/B
path needs), and the built-in default environment (after a bad CRC) cannot be completed: its
text is longer than the first buffer.

The disk is laid out as ``everest-py-qemuarm64.wks`` (MBR; 1 boot, vfat, active; 2 rootfs A;
3 rootfs B; 4 data), only smaller.  The boot partition holds ``boot.scr`` made from ``boot.cmd``
with ``mkimage`` as u-boot.inc does, and the two environment files the recipe deploys (which this
U-Boot does not read).  Each root file system has a ``/boot/Image`` that is no kernel, of a size
of its own (``IMAGE_SIZE``), so the console shows which partition the script loaded from;
``booti`` rejects it and the script resets, which ends QEMU (``-no-reboot``): one failed boot.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "recipes-core" / "u-boot" / "files"
RECIPE = REPO / "recipes-core" / "u-boot" / "u-boot-everest-py.inc"

QEMU = "qemu-system-aarch64"
UBOOT_BIN = Path("/usr/lib/u-boot/qemu_arm64/u-boot.bin")
TOOLS = {"mkimage": "u-boot-tools", "mkenvimage": "u-boot-tools", "mcopy": "mtools", "mkfs.vfat": "dosfstools"}

# Where Debian's qemu_arm64 U-Boot keeps its environment: the start of QEMU virt's second 64 MiB
# flash bank (pflash unit 1), one copy of CONFIG_ENV_SIZE without a flags byte.
FLASH_SIZE = 64 * 1024 * 1024
ENV_OFFSET = 0
ENV_SIZE = 0x40000

MIB = 1024 * 1024
# (MBR partition type, size) of the four partitions: 0x0c FAT32 (LBA), 0x83 Linux.
PARTITIONS = ((0x0C, 16 * MIB), (0x83, 4 * MIB), (0x83, 4 * MIB), (0x83, 2 * MIB))
FIRST_LBA = 2048
SLOT_PART = {"A": 2, "B": 3}
IMAGE_SIZE = {"A": 1111, "B": 2222}
# Of U-Boot's default environment, what the A/B path uses: where bootcmd loads boot.scr and where
# the script loads the kernel.
DEFAULTS_USED = ("scriptaddr", "kernel_addr_r")

BOOTING = re.compile(r"^booting slot (\S*) \(virtio 0:(\S*)\)$", re.MULTILINE)
BYTES_READ = re.compile(r"^(\d+) bytes read", re.MULTILINE)
RESETTING = "no slot has boot attempts left; resetting the counters"
LOADED_FROM_FLASH = "Loading Environment from Flash... OK"
BAD_CRC = "bad CRC, using default environment"


def missing() -> str | None:
    """Why the U-Boot tests cannot run here, or None."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is missing: apt-get install qemu-system-arm"
    if not UBOOT_BIN.is_file():
        return f"{UBOOT_BIN} is missing: apt-get install u-boot-qemu"
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            return f"{tool} is missing: apt-get install {package}"
    if _mke2fs() is None:
        return "mke2fs is missing: apt-get install e2fsprogs"
    return None


def _mke2fs() -> str | None:
    return shutil.which("mke2fs") or shutil.which("mke2fs", path="/sbin:/usr/sbin")


def _run(*argv: str | Path) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True)


# --- environment --------------------------------------------------------------------------------


def default_env(binary: Path = UBOOT_BIN) -> dict[str, str]:
    """U-Boot's built-in default environment (what ``u-boot-initial-env`` lists), read from its binary.

    It is a run of NUL-terminated ``name=value`` strings ending in an empty one, the only place in
    the binary with ``bootdelay=`` right after a NUL.
    """
    data = binary.read_bytes()
    hit = data.find(b"\0bootdelay=")
    assert hit >= 0, f"no default environment in {binary}"
    assert data.find(b"\0bootdelay=", hit + 1) < 0, f"two candidates for the default environment in {binary}"
    entry = re.compile(rb"[A-Za-z_][A-Za-z0-9_.]*=[\x20-\x7e\t\n]*")
    start = hit + 1
    while True:  # step back over the entries before bootdelay=
        prev_start = data.rfind(b"\0", 0, start - 1) + 1
        if not entry.fullmatch(data[prev_start : start - 1]):
            break
        start = prev_start
    items = data[start : data.find(b"\0\0", start)].split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in items)


def ab_env() -> list[str]:
    """The lines of everest-py-ab.env that the recipe appends (it drops comments and empty lines)."""
    text = (FILES / "everest-py-ab.env").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def seed_env(**overrides: str | None) -> list[str]:
    """A first environment as the recipe builds it, cut down to what the A/B path needs.

    U-Boot's defaults of ``DEFAULTS_USED`` and ``bootdelay=0`` (the default waits 2 s for a key),
    then everest-py-ab.env.  ``overrides`` replace variables of everest-py-ab.env; None leaves one
    out.
    """
    defaults = default_env()
    lines = ["bootdelay=0", *(f"{name}={defaults[name]}" for name in DEFAULTS_USED)]
    for line in ab_env():
        name = line.partition("=")[0]
        if name not in overrides:
            lines.append(line)
        elif overrides[name] is not None:
            lines.append(f"{name}={overrides[name]}")
    return lines


def env_image(workdir: Path, lines: list[str], size: int, redundant: bool = False) -> bytes:
    """An environment image made by ``mkenvimage`` (the tool the recipe uses)."""
    text = workdir / "env.txt"
    out = workdir / "env.bin"
    text.write_text("".join(line + "\n" for line in lines))
    _run("mkenvimage", *(["-r"] if redundant else []), "-s", hex(size), "-o", out, text)
    return out.read_bytes()


def parse_env(image: bytes) -> dict[str, str] | None:
    """The variables of a (non-redundant) environment image, or None if its CRC does not match."""
    (crc,) = struct.unpack_from("<I", image, 0)
    data = image[4:]
    if zlib.crc32(data) != crc:
        return None
    return _variables(data[: data.find(b"\0\0")])


def _variables(text: bytes) -> dict[str, str]:
    return dict(item.decode().partition("=")[::2] for item in text.split(b"\0") if item)


def _recipe_env_size() -> int:
    m = re.search(r'^EVEREST_PY_UBOOT_ENV_SIZE:everest-py = "(0x[0-9a-fA-F]+)"', RECIPE.read_text(), re.MULTILINE)
    assert m, f"no EVEREST_PY_UBOOT_ENV_SIZE in {RECIPE}"
    return int(m.group(1), 16)


# --- disk ---------------------------------------------------------------------------------------


def _mbr(entries: list[tuple[int, int, int, bool]]) -> bytes:
    """A DOS partition table: (type, first LBA, sectors, active) per partition."""
    mbr = bytearray(512)
    struct.pack_into("<I", mbr, 440, 0x45565059)  # disk signature
    for i, (ptype, lba, sectors, active) in enumerate(entries):
        # CHS addresses are unused: fe ff ff is "beyond CHS", as partitioning tools write it.
        chs = b"\xfe\xff\xff"
        struct.pack_into("<B3sB3sII", mbr, 446 + 16 * i, 0x80 if active else 0, chs, ptype, chs, lba, sectors)
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def make_disk(workdir: Path) -> Path:
    """The virtio disk: boot.scr and the deployed env files on the vfat partition, a slot in each root."""
    boot_scr = workdir / "boot.scr"
    _run("mkimage", "-C", "none", "-A", "arm64", "-T", "script", "-d", FILES / "boot.cmd", boot_scr)
    boot = workdir / "boot.vfat"
    _run("mkfs.vfat", "-n", "boot", "-C", boot, str(PARTITIONS[0][1] // 1024))
    _run("mcopy", "-i", boot, boot_scr, "::boot.scr")
    # The deployed copies as the recipe makes them (defaults without bootcmd and BOOT_*, then ours).
    initial = [f"{k}={v}" for k, v in default_env().items() if k != "bootcmd" and not k.startswith("BOOT_")]
    deployed = workdir / "uboot.env"
    deployed.write_bytes(env_image(workdir, initial + ab_env(), _recipe_env_size(), redundant=True))
    _run("mcopy", "-i", boot, deployed, "::uboot.env")
    _run("mcopy", "-i", boot, deployed, "::uboot-redund.env")
    parts = [boot]
    mke2fs = _mke2fs()
    assert mke2fs is not None
    for index, (_, size) in enumerate(PARTITIONS[1:], start=2):
        root = workdir / f"root{index}"
        (root / "boot").mkdir(parents=True)
        for slot, part in SLOT_PART.items():
            if part == index:
                # Not a kernel: the slot's letter, repeated to a size that tells the slots apart.
                (root / "boot" / "Image").write_bytes(slot.encode() * IMAGE_SIZE[slot])
        image = workdir / f"part{index}.ext4"
        _run(mke2fs, "-q", "-F", "-t", "ext4", "-d", root, image, f"{size // 1024}k")
        parts.append(image)
    entries = []
    lba = FIRST_LBA
    for ptype, size in PARTITIONS:
        entries.append((ptype, lba, size // 512, ptype == 0x0C))
        lba += size // 512
    disk = workdir / "disk.img"
    with disk.open("wb") as f:
        f.write(_mbr(entries))
        for (_, start, _, _), part_image in zip(entries, parts, strict=True):
            f.seek(start * 512)
            f.write(part_image.read_bytes())
        f.truncate(lba * 512)
    return disk


# --- the board ----------------------------------------------------------------------------------


@dataclass
class Boot:
    """What one QEMU start printed, and the environment it saved (None if it could not be read)."""

    console: str
    saved: dict[str, str] | None

    @property
    def slot(self) -> tuple[str, int] | None:
        """(slot, partition) of the script's "booting slot" line, or None."""
        found = BOOTING.findall(self.console)
        assert len(found) <= 1, self.console
        return (found[0][0], int(found[0][1])) if found else None

    @property
    def loaded(self) -> list[int]:
        """Sizes of the files U-Boot loaded, in order."""
        return [int(n) for n in BYTES_READ.findall(self.console)]

    def counters(self) -> tuple[str, str, str]:
        """BOOT_ORDER, BOOT_A_LEFT and BOOT_B_LEFT of the saved environment."""
        assert self.saved is not None, f"the environment was not saved:\n{self.console}"
        return self.saved.get("BOOT_ORDER", ""), self.saved.get("BOOT_A_LEFT", ""), self.saved.get("BOOT_B_LEFT", "")


class Board:
    """QEMU virt with Debian's U-Boot, a copy of the test disk on virtio, a flash bank for the environment."""

    def __init__(self, workdir: Path, disk: Path, timeout: float = 15.0) -> None:
        self.workdir = workdir
        self.timeout = timeout
        self.disk = workdir / "disk.img"
        shutil.copyfile(disk, self.disk)
        self.flash = workdir / "flash1.img"
        with self.flash.open("wb") as f:
            f.truncate(FLASH_SIZE)
        self.erase_env()

    def erase_env(self) -> None:
        """An erased environment sector (all 0xff): a bad CRC."""
        self._write(b"\xff" * ENV_SIZE)

    def write_env(self, lines: list[str]) -> None:
        self._write(env_image(self.workdir, lines, ENV_SIZE))

    def _write(self, image: bytes) -> None:
        assert len(image) == ENV_SIZE
        with self.flash.open("r+b") as f:
            f.seek(ENV_OFFSET)
            f.write(image)

    def raw_env(self) -> bytes:
        with self.flash.open("rb") as f:
            f.seek(ENV_OFFSET)
            return f.read(ENV_SIZE)

    def settle(self) -> dict[str, str] | None:
        """The environment U-Boot saved, with its write completed if QEMU cut it short (see the module doc).

        None unless the flash holds the whole text of an export, followed only by zeros (the
        padding U-Boot writes) and erased bytes (0xff, where the write did not get to), and the CRC
        matches that text followed by zeros.
        """
        raw = self.raw_env()
        env = parse_env(raw)
        if env is not None:
            return env
        data = raw[4:]
        end = data.find(b"\0\0")
        if end < 0:
            return None
        if data[end:].translate(None, b"\0\xff"):
            return None
        completed = raw[:4] + data[:end] + bytes(len(data) - end)
        env = parse_env(completed)
        if env is not None:
            self._write(completed)
        return env

    def saved_prefix(self) -> dict[str, str]:
        """The variables of the part of an export that reached the flash, without a CRC check.

        The write ends where the erased bytes (0xff, which no variable holds) begin; the item it
        cut in two is left out, and so is everything after the end of the export (two NULs).
        """
        data = self.raw_env()[4:]
        erased = data.find(b"\xff")
        items = (data if erased < 0 else data[:erased]).split(b"\0")[:-1]
        if b"" in items:
            items = items[: items.index(b"")]
        return _variables(b"\0".join(items))

    def boot(self) -> Boot:
        """Start QEMU once: U-Boot runs bootcmd, the script resets, -no-reboot ends QEMU."""
        argv = [
            QEMU,
            *("-M", "virt", "-cpu", "cortex-a57", "-m", "512", "-nic", "none"),
            *("-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot"),
            *("-bios", str(UBOOT_BIN)),
            *("-drive", f"if=pflash,unit=1,format=raw,file={self.flash}"),
            *("-drive", f"if=none,id=disk,format=raw,file={self.disk}"),
            *("-device", "virtio-blk-device,drive=disk"),
        ]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            tail = out.decode(errors="replace")[-3000:]
            raise AssertionError(f"U-Boot did not reset within {self.timeout} s:\n{tail}") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        console = out.decode(errors="replace").replace("\r\n", "\n")
        assert proc.returncode == 0, f"{QEMU} exited with {proc.returncode}:\n{console[-3000:]}"
        return Boot(console, self.settle())
