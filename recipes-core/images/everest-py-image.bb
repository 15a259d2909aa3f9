# nooelint: oelint.var.suggestedvar.BUGTRACKER,oelint.var.suggestedvar.CVE_PRODUCT - everest-py has no public tracker or NVD entry yet
# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
SUMMARY = "everest-py charger image"
DESCRIPTION = "Read-only root filesystem for one RAUC slot: the everest-py stack and its broker, \
               RAUC with update health, SSH for service, TPM 2.0 software where the machine has a \
               TPM. All state lives on the data partition (/var/lib/everest, /srv), shared by both \
               slots."
SECTION = "base"
LICENSE = "Apache-2.0"

inherit core-image

IMAGE_FEATURES += "read-only-rootfs ssh-server-openssh"

IMAGE_LINGUAS = ""

# U-Boot reads the kernel (and device trees) from /boot of the slot it boots.
EVEREST_PY_KERNEL = "kernel-image ${@'kernel-devicetree' if d.getVar('KERNEL_DEVICETREE') else ''}"

# tpm2-tss, the OpenSSL 3 provider (keys that never leave the TPM) and the resource manager it
# needs for TLS: only where both distro and machine have tpm2 (the Charge SOM).
EVEREST_PY_TPM = "\
    tpm2-abrmd \
    tpm2-openssl \
    tpm2-tools \
    tpm2-tss \
"

IMAGE_INSTALL = "\
    packagegroup-core-boot \
    ${EVEREST_PY_KERNEL} \
    ${@bb.utils.contains('COMBINED_FEATURES', 'tpm2', '${EVEREST_PY_TPM}', '', d)} \
    e2fsprogs-mke2fs \
    e2fsprogs-resize2fs \
    everest-py-service \
    everest-py-update \
    mosquitto-clients \
    rauc \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"

# One ext4 per slot (what the bundle carries).  At most the size of a slot (1 GiB); 4 KiB
# aligned for RAUC's adaptive updates.
IMAGE_FSTYPES = "ext4"
IMAGE_ROOTFS_MAXSIZE = "1048576"
IMAGE_ROOTFS_ALIGNMENT = "4"

# qemuarm64: a whole disk (boot partition, slots A and B, data) booted by U-Boot.
IMAGE_FSTYPES:append:qemuarm64 = " wic"
WKS_FILE:qemuarm64 = "everest-py-qemuarm64.wks"
WIC_CREATE_EXTRA_ARGS:qemuarm64 = "--no-fstab-update"
IMAGE_BOOT_FILES:qemuarm64 = "boot.scr uboot.env uboot-redund.env"
do_image_wic[depends] += "${@'u-boot:do_deploy' if d.getVar('MACHINE') == 'qemuarm64' else ''}"
QB_DEFAULT_BIOS:qemuarm64 = "u-boot.bin"
QB_DEFAULT_KERNEL:qemuarm64 = "none"
QB_DEFAULT_FSTYPE:qemuarm64 = "wic"
QB_MEM:qemuarm64 = "-m 1024"

# SSH host keys and authorized keys on the data partition: the same host keys after every
# reboot and update, and service keys that can be provisioned without writing to the rootfs.
# (poky's read-only-rootfs hook, which runs before this, moved the host keys to /var/run/ssh.)
ROOTFS_POSTPROCESS_COMMAND += "everest_py_ssh_on_data;"
everest_py_ssh_on_data[doc] = "Moves the SSH host keys and authorized keys to the data partition"
everest_py_ssh_on_data() {
    if [ -e ${IMAGE_ROOTFS}${sysconfdir}/ssh/sshd_config_readonly ]; then
        sed -i -e 's#/var/run/ssh/#/data/ssh/#' ${IMAGE_ROOTFS}${sysconfdir}/ssh/sshd_config_readonly
        echo "AuthorizedKeysFile .ssh/authorized_keys /data/ssh/authorized_keys" \
            >> ${IMAGE_ROOTFS}${sysconfdir}/ssh/sshd_config_readonly
        sed -i -e 's#SYSCONFDIR:-/var/run/ssh#SYSCONFDIR:-/data/ssh#' ${IMAGE_ROOTFS}${sysconfdir}/default/ssh
    fi
}
