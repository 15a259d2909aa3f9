# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""A/B update delivery of qemuarm64 with the real RAUC (Debian 12's rauc 1.8); see ota.py for the set-up.

Proven here: a signed bundle, built as the bundle recipe and meta-rauc's class make it, installs
into the slot that is not booted, the U-Boot environment then boots that slot first with its
full attempts (``fw_setenv`` through the machine's fw_env.config, on the redundant copies the
U-Boot recipe makes with ``mkenvimage``), and ``resize=true`` grows the file system to the
slot; the pre-install handler (update-health) voids the target slot's confirmation and only
that; bundles of the other machines and bundles signed by another CA are refused and change
nothing; the production format (verity, adaptive) builds and passes the check docs/yocto.md
gives; mark-good, mark-bad and the docs' manual rollback write what boot.cmd reads; fw_env.config
names the files, size and copies U-Boot's configuration fragment writes.  The keys come from the
commands of docs/yocto.md "Signing and keys".

Not proven: installing a verity bundle.  It needs device-mapper, which this kernel lacks
("Failed to open /dev/mapper/control"), so installs use the plain format.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from . import ota
from .layers import MACHINES

OWN = ota.MACHINE
OTHER_MACHINES = [m for m in MACHINES if m != OWN]


@dataclass(frozen=True)
class KeyPair:
    developer: ota.Keys  # the keyring of the charger trusts this CA
    stranger: ota.Keys  # made the same way, but another CA


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    reason = ota.missing()
    if reason is not None:
        pytest.skip(reason)
    ota.check_tools()
    base = tmp_path_factory.mktemp("ota-keys")
    developer, stranger = ota.make_keys(base / "developer", base / "stranger")
    return KeyPair(developer, stranger)


@pytest.fixture(scope="module")
def running_charger(tmp_path_factory: pytest.TempPathFactory, keys: KeyPair) -> Iterator[ota.Charger]:
    charger = ota.Charger(tmp_path_factory.mktemp("ota"), keys.developer)
    try:
        charger.reset()
        charger.start(booted="A")
        yield charger
    finally:
        charger.stop()


@pytest.fixture
def charger(running_charger: ota.Charger) -> ota.Charger:
    """The charger booted from A, with fresh slots, environment and confirmed markers."""
    running_charger.reset()
    return running_charger


@pytest.fixture
def bundle_dir(running_charger: ota.Charger, request: pytest.FixtureRequest) -> Path:
    """A new directory for one bundle, where the charger's service can read it."""
    name = re.sub(r"\W", "_", request.node.name)
    path = running_charger.workdir / "bundles" / name
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(exist_ok=True)
    return path


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_signed_bundle_installs_into_the_other_slot(charger: ota.Charger, keys: KeyPair, bundle_dir: Path) -> None:
    bundle = ota.Bundle.of(OWN, "plain")
    release = ota.os_release(bundle)
    path = ota.build_bundle(bundle_dir, keys.developer, bundle, release)
    # B used up its attempts before: the install must give them back.
    charger.set_env("BOOT_B_LEFT", "0")
    before = charger.env()
    assert before["BOOT_ORDER"].split() == ["A", "B"]

    result = charger.rauc("install", path)
    assert f"Installing `{path}` succeeded" in output(result), output(result)

    assert ota.ext4_file(charger.slots["B"], "/etc/os-release") == release
    assert ota.ext4_file(charger.slots["A"], "/etc/os-release") == charger.slot_os_release["A"]
    assert ota.ext4_size(charger.slots["B"]) == ota.SLOT_SIZE  # resize=true grew the image to the slot
    env = charger.env()
    assert env["BOOT_ORDER"].split() == ["B", "A"]
    assert env["BOOT_B_LEFT"] == ota.boot_attempts()
    assert env["BOOT_A_LEFT"] == before["BOOT_A_LEFT"]
    assert ota.next_boot(env) == "B"
    # RAUC's record of the slot (central status in the data directory).
    status = json.loads(charger.rauc("status", "--detailed", "--output-format=json").stdout)
    assert status["booted"] == "A"
    assert status["boot_primary"] == charger.slot_name["B"]
    slot_b = next(s[charger.slot_name["B"]] for s in status["slots"] if charger.slot_name["B"] in s)
    assert slot_b["slot_status"]["bundle"]["compatible"] == bundle.compatible
    assert slot_b["slot_status"]["bundle"]["version"] == bundle.version


def test_pre_install_handler_voids_only_the_target_slots_confirmation(
    charger: ota.Charger, keys: KeyPair, bundle_dir: Path
) -> None:
    assert sorted(p.name for p in charger.confirmed.iterdir()) == ["A", "B"]
    path = ota.build_bundle(bundle_dir, keys.developer, ota.Bundle.of(OWN, "plain"), "ID=everest-py\n")
    charger.rauc("install", path)
    assert sorted(p.name for p in charger.confirmed.iterdir()) == ["A"]
    assert f"Starting pre install handler: {ota.pre_install_handler(charger.conf)}" in charger.service_log_text()


def assert_refused(charger: ota.Charger, path: Path, error: str) -> None:
    """``rauc install`` fails with ``error`` and changes neither slot nor the environment."""
    slots = {name: image.read_bytes() for name, image in charger.slots.items()}
    env = charger.env()
    result = charger.rauc("install", path, check=False)
    assert result.returncode != 0, output(result)
    assert error in output(result), output(result)
    assert {name: image.read_bytes() for name, image in charger.slots.items()} == slots
    assert charger.env() == env


def other_machine_bundle(keys: KeyPair, bundle_dir: Path, machine: str) -> tuple[Path, str]:
    """A bundle of ``machine`` signed with the trusted key, and the error RAUC refuses it with."""
    own = ota.Bundle.of(OWN).compatible
    bundle = ota.Bundle.of(machine, "plain")
    assert bundle.compatible != own
    path = ota.build_bundle(bundle_dir, keys.developer, bundle, ota.os_release(bundle))
    return path, f"Compatible mismatch: Expected '{own}' but bundle manifest has '{bundle.compatible}'"


@pytest.mark.parametrize("machine", OTHER_MACHINES)
def test_bundle_of_another_machine_is_refused(
    charger: ota.Charger, keys: KeyPair, bundle_dir: Path, machine: str
) -> None:
    path, error = other_machine_bundle(keys, bundle_dir, machine)
    assert_refused(charger, path, error)


def test_refused_bundle_of_another_machine_keeps_the_confirmation(
    charger: ota.Charger, keys: KeyPair, bundle_dir: Path
) -> None:
    path, error = other_machine_bundle(keys, bundle_dir, OTHER_MACHINES[0])
    assert_refused(charger, path, error)
    assert sorted(p.name for p in charger.confirmed.iterdir()) == ["A", "B"]


def test_bundle_signed_by_another_ca_is_refused(charger: ota.Charger, keys: KeyPair, bundle_dir: Path) -> None:
    bundle = ota.Bundle.of(OWN, "plain")
    path = ota.build_bundle(bundle_dir, keys.stranger, bundle, ota.os_release(bundle))
    assert_refused(charger, path, "signature verification failed")
    # Refused before the pre-install handler: the confirmation stands.
    assert sorted(p.name for p in charger.confirmed.iterdir()) == ["A", "B"]


def test_production_bundle_is_verity_and_passes_the_docs_check(keys: KeyPair, tmp_path: Path) -> None:
    bundle = ota.Bundle.of(OWN)  # the recipe's default format
    assert bundle.format == "verity"
    assert bundle.adaptive is not None
    path = ota.build_bundle(tmp_path / "bundle", keys.developer, bundle, ota.os_release(bundle))

    # The check of docs/yocto.md, as written, in a directory with the keyring and the bundle.
    argv = shlex.split(ota.docs_check_command())
    check_dir = tmp_path / "check"
    check_dir.mkdir()
    shutil.copy(keys.developer.ca, check_dir / "ca.cert.pem")
    shutil.copy(path, check_dir / path.name)
    assert path.name in argv, f"the docs check {argv} names another bundle than {path.name}"
    result = ota.run(*argv, cwd=check_dir)
    assert "Verified inline signature by 'O = everest-py development, CN = everest-py development signing 1'" in (
        output(result)
    ), output(result)
    assert re.search(r"^Bundle Format:\s+verity$", result.stdout, re.MULTILINE), result.stdout
    info = json.loads(ota.run("rauc", "info", f"--keyring={keys.developer.ca}", "--output-format=json", path).stdout)
    assert (info["compatible"], info["version"]) == (bundle.compatible, bundle.version)
    (image,) = info["images"]
    assert image[bundle.slot]["adaptive"] == [bundle.adaptive]

    other = ota.run("rauc", "info", f"--keyring={keys.stranger.ca}", path, check=False)
    assert other.returncode != 0, output(other)


def test_mark_good_and_mark_bad_of_the_booted_slot(charger: ota.Charger) -> None:
    attempts = ota.boot_attempts()
    # boot.cmd took one attempt to boot A.
    charger.set_env("BOOT_A_LEFT", str(int(attempts) - 1))

    result = charger.rauc("status", "mark-good")
    assert f"marked slot {charger.slot_name['A']} as good" in output(result), output(result)
    env = charger.env()
    assert env["BOOT_A_LEFT"] == attempts
    assert env["BOOT_ORDER"].split() == ["A", "B"]
    assert ota.next_boot(env) == "A"

    result = charger.rauc("status", "mark-bad")
    assert f"marked slot {charger.slot_name['A']} as bad" in output(result), output(result)
    env = charger.env()
    assert env["BOOT_A_LEFT"] == "0"
    assert env["BOOT_ORDER"].split() == ["B"]  # RAUC also takes the bad slot out of the order
    assert env["BOOT_B_LEFT"] == attempts
    assert ota.next_boot(env) == "B"


def test_roll_back_by_hand_as_the_docs_say(charger: ota.Charger) -> None:
    charger.set_env("BOOT_B_LEFT", "0")
    argv = shlex.split(ota.docs_rollback_command())
    assert argv[0] == "rauc", argv
    charger.rauc(*argv[1:])
    env = charger.env()
    assert env["BOOT_ORDER"].split()[0] == "B"
    assert env["BOOT_B_LEFT"] == ota.boot_attempts()
    assert ota.next_boot(env) == "B"


def test_linux_and_u_boot_agree_on_the_environment() -> None:
    """fw_env.config names the copies U-Boot writes (everest-py-env.cfg), of U-Boot's size."""
    config = ota.uboot_config()
    size = int(config["CONFIG_ENV_SIZE"], 0)
    names = [config["CONFIG_ENV_FAT_FILE"]]
    if config.get("CONFIG_SYS_REDUNDAND_ENVIRONMENT") == "y":
        names.append(config["CONFIG_ENV_FAT_FILE_REDUND"])
    copies = ota.env_copies(ota.fw_env_config(OWN))
    assert [PurePosixPath(c.path).name for c in copies] == names
    assert len({PurePosixPath(c.path).parent for c in copies}) == 1, "the copies are on one partition"
    assert [(c.offset, c.size) for c in copies] == [(0, size)] * len(names)
    assert ota.uboot_env_size() == size  # the first environment the U-Boot recipe makes
    assert set(names) <= set(ota.image_boot_files(OWN))  # and wic puts on the boot partition


def test_the_boot_partition_is_mounted_where_fw_env_config_looks() -> None:
    files = [c.path for c in ota.env_copies(ota.fw_env_config(OWN)) if not c.path.startswith("/dev/")]
    directories = {str(PurePosixPath(path).parent) for path in files}
    assert directories <= ota.mount_points(OWN)
