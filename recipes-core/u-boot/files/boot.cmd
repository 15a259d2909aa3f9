# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
#
# A/B boot for RAUC (qemuarm64).  Partitions of the virtio disk: 1 boot (vfat: this script and
# the environment), 2 rootfs A, 3 rootfs B, 4 data.  Each boot takes one attempt from the first
# slot in BOOT_ORDER that has attempts left; Linux gives them back (rauc status mark-good) once
# everest-py has reached global ready.

# U-Boot reads its environment before it enumerates the virtio disk, so at this point it may
# still run on the built-in default: read the saved one now.  The device tree QEMU handed over
# is kept in a shell variable, which "env load" does not touch.
qemu_fdt=${fdtcontroladdr}
env load

test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

setenv rootpart
for slot in ${BOOT_ORDER}; do
    if test -z "${rootpart}"; then
        if test "x${slot}" = "xA" && test ${BOOT_A_LEFT} -gt 0; then
            setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
            setenv rootpart 2
            setenv raucslot A
        elif test "x${slot}" = "xB" && test ${BOOT_B_LEFT} -gt 0; then
            setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
            setenv rootpart 3
            setenv raucslot B
        fi
    fi
done

if test -z "${rootpart}"; then
    # Both slots used up their attempts: start a new round rather than stop for good.
    echo "no slot has boot attempts left; resetting the counters"
    setenv BOOT_A_LEFT 3
    setenv BOOT_B_LEFT 3
    saveenv
    reset
fi

saveenv
echo "booting slot ${raucslot} (virtio 0:${rootpart})"
setenv bootargs "console=ttyAMA0,115200 root=/dev/vda${rootpart} rootfstype=ext4 rootwait ro panic=5 rauc.slot=${raucslot}"
load virtio 0:${rootpart} ${kernel_addr_r} /boot/Image
booti ${kernel_addr_r} - ${qemu_fdt}
# Not reached unless the kernel could not be loaded: counts as a failed attempt.
reset
