# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""The A/B boot script (recipes-core/u-boot/files/boot.cmd) in a real U-Boot, one QEMU start per boot.

Proven here, with U-Boot's own hush shell, ``test``, ``setexpr`` and ``saveenv``: which slot each
boot takes from BOOT_ORDER and the attempts left, that every boot costs one attempt and the
environment keeps it, the fallback to the other slot, the new round when both slots are used up,
the defaults for missing variables and for a bad environment, the ``bootcmd`` of
everest-py-ab.env, the disk layout of the wks (boot.scr found on partition 1, the kernel loaded
from partition 2 or 3), and the environment image format of ``mkenvimage``.

Not proven: where our U-Boot keeps the environment (everest-py-env.cfg: two files on the vfat
partition), its redundant copies, and the script's ``env load``.  Debian's U-Boot keeps one copy
in flash, loads it while it starts and has no ``env load``, so the script's first command fails
harmlessly and the rest runs on the environment from flash; see uboot.py for that U-Boot and for
the QEMU flash bug the harness works around.  Proving those needs a U-Boot built with our
config fragment (the Yocto build, or U-Boot built here with a cross compiler).

Each boot fails on purpose: ``/boot/Image`` is no kernel, so ``booti`` returns and the script
resets, as after a kernel that never reaches mark-good.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import uboot

SLOT_PART = uboot.SLOT_PART


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = uboot.missing()
    if reason is not None:
        pytest.skip(reason)
    return uboot.make_disk(tmp_path_factory.mktemp("uboot-disk"))


@pytest.fixture
def board(disk: Path, tmp_path: Path) -> uboot.Board:
    return uboot.Board(tmp_path, disk)


def assert_booted(boot: uboot.Boot, slot: str) -> None:
    """The script chose ``slot`` and loaded the kernel from that slot's partition."""
    assert boot.slot == (slot, SLOT_PART[slot]), boot.console
    assert boot.loaded[-1] == uboot.IMAGE_SIZE[slot], boot.console


def test_fresh_environment_boots_a_and_takes_one_attempt(board: uboot.Board) -> None:
    board.write_env(uboot.seed_env())
    boot = board.boot()
    assert uboot.LOADED_FROM_FLASH in boot.console
    assert_booted(boot, "A")
    assert boot.counters() == ("A B", "2", "3")
    # The rest of the environment is saved as it was loaded.
    assert boot.saved is not None
    expected_bootcmd = next(line for line in uboot.ab_env() if line.startswith("bootcmd="))
    assert f"bootcmd={boot.saved['bootcmd']}" == expected_bootcmd


def test_three_failed_boots_of_a_then_b(board: uboot.Board) -> None:
    board.write_env(uboot.seed_env())
    for left in ("2", "1", "0"):
        boot = board.boot()
        assert_booted(boot, "A")
        assert boot.counters() == ("A B", left, "3")
    boot = board.boot()
    assert_booted(boot, "B")
    assert boot.counters() == ("A B", "0", "2")


def test_installed_slot_boots_first(board: uboot.Board) -> None:
    # What RAUC's uboot backend writes after installing into B: B first, with three attempts.
    board.write_env(uboot.seed_env(BOOT_ORDER="B A", BOOT_B_LEFT="3"))
    boot = board.boot()
    assert_booted(boot, "B")
    assert boot.counters() == ("B A", "3", "2")


def test_update_that_never_gets_good_falls_back_to_the_old_slot(board: uboot.Board) -> None:
    board.write_env(uboot.seed_env(BOOT_ORDER="B A", BOOT_B_LEFT="3"))
    for left in ("2", "1", "0"):
        boot = board.boot()
        assert_booted(boot, "B")
        assert boot.counters() == ("B A", "3", left)
    boot = board.boot()
    assert_booted(boot, "A")
    assert boot.counters() == ("B A", "2", "0")


def test_both_slots_used_up_start_a_new_round(board: uboot.Board) -> None:
    board.write_env(uboot.seed_env(BOOT_A_LEFT="0", BOOT_B_LEFT="0"))
    boot = board.boot()
    assert uboot.RESETTING in boot.console
    assert boot.slot is None, boot.console
    assert len(boot.loaded) == 1, boot.console  # boot.scr only, no kernel
    assert boot.counters() == ("A B", "3", "3")
    boot = board.boot()
    assert_booted(boot, "A")
    assert boot.counters() == ("A B", "2", "3")


def test_environment_without_the_ab_variables_gets_the_defaults(board: uboot.Board) -> None:
    board.write_env(uboot.seed_env(BOOT_ORDER=None, BOOT_A_LEFT=None, BOOT_B_LEFT=None))
    boot = board.boot()
    assert uboot.LOADED_FROM_FLASH in boot.console
    assert_booted(boot, "A")
    assert boot.counters() == ("A B", "2", "3")


def test_bad_environment_falls_back_to_the_defaults(board: uboot.Board) -> None:
    # An erased environment: U-Boot starts on its built-in one, whose bootcmd (distro boot) finds
    # boot.scr on the active vfat partition.
    board.erase_env()
    boot = board.boot()
    assert uboot.BAD_CRC in boot.console
    assert_booted(boot, "A")
    # The built-in environment is too long for the part of the write that QEMU lets through, so
    # the saved copy cannot be completed; the A/B variables sort first and are in that part.
    saved = boot.saved if boot.saved is not None else board.saved_prefix()
    assert (saved.get("BOOT_ORDER"), saved.get("BOOT_A_LEFT"), saved.get("BOOT_B_LEFT")) == ("A B", "2", "3")
