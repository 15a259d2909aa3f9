# nooelint: oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER,oelint.var.suggestedvar.CVE_PRODUCT,oelint.var.bbclassextend - everest-py has no public home page, tracker or NVD entry yet; built for the target only
# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
SUMMARY = "Update health of the everest-py charger: mark-good at global ready, fallback"
DESCRIPTION = "Makes everest-py the health check of a boot (RAUC marks a slot good only after \
               global ready), reboots an updated slot that never becomes ready so that U-Boot \
               falls back, keeps RAUC's data on the data partition and installs the U-Boot \
               environment location where the board support layer does not."
SECTION = "base"
LICENSE = "Apache-2.0"
# nooelint: oelint.var.licenseremotefile - the sources are the files next to this recipe
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

SRC_URI = "\
    file://everest-py-boot-complete.conf \
    file://everest-py-boot-deadline.service \
    file://everest-py-boot-deadline.timer \
    file://rauc-mark-good.conf \
    file://rauc.conf \
    file://update-health \
    ${@'file://fw_env.config' if d.getVar('EVEREST_PY_FW_ENV_CONFIG') == '1' else ''} \
"
# The boot partition holds U-Boot's environment files on qemuarm64: mounted at /uboot.
SRC_URI:append:qemuarm64 = " file://uboot.mount"

S = "${WORKDIR}"

inherit features_check systemd

REQUIRED_DISTRO_FEATURES = "rauc systemd"

# Install /etc/fw_env.config from files/<machine>/: "1" where the board support layer does not
# (meta-chargebyte installs it for tarragon with its u-boot-fw-utils).
EVEREST_PY_FW_ENV_CONFIG ??= "0"
EVEREST_PY_FW_ENV_CONFIG:qemuarm64 ??= "1"
EVEREST_PY_FW_ENV_CONFIG:chargesom ??= "1"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    install -D -m 0755 ${WORKDIR}/update-health ${D}${libexecdir}/everest-py/update-health
    install -D -m 0644 ${WORKDIR}/everest-py-boot-deadline.service \
        ${D}${systemd_system_unitdir}/everest-py-boot-deadline.service
    install -D -m 0644 ${WORKDIR}/everest-py-boot-deadline.timer \
        ${D}${systemd_system_unitdir}/everest-py-boot-deadline.timer
    install -D -m 0644 ${WORKDIR}/everest-py-boot-complete.conf \
        ${D}${systemd_system_unitdir}/everest-py.service.d/50-boot-complete.conf
    install -d ${D}${systemd_system_unitdir}/boot-complete.target.requires
    ln -s ../everest-py.service ${D}${systemd_system_unitdir}/boot-complete.target.requires/everest-py.service
    install -D -m 0644 ${WORKDIR}/rauc-mark-good.conf \
        ${D}${systemd_system_unitdir}/rauc-mark-good.service.d/50-everest-py.conf
    install -D -m 0644 ${WORKDIR}/rauc.conf ${D}${systemd_system_unitdir}/rauc.service.d/50-everest-py.conf
    if [ "${EVEREST_PY_FW_ENV_CONFIG}" = "1" ]; then
        install -D -m 0644 ${WORKDIR}/fw_env.config ${D}${sysconfdir}/fw_env.config
    fi
}

PACKAGE_ARCH = "${MACHINE_ARCH}"

SYSTEMD_SERVICE:${PN} = "everest-py-boot-deadline.timer"
SYSTEMD_SERVICE:${PN}:append:qemuarm64 = " uboot.mount"

FILES:${PN} += "${systemd_system_unitdir}"
FILES:${PN}:append:qemuarm64 = " /uboot"

RDEPENDS:${PN} = "\
    everest-py-service \
    rauc \
    rauc-mark-good \
"

do_install:append:qemuarm64() {
    install -D -m 0644 ${WORKDIR}/uboot.mount ${D}${systemd_system_unitdir}/uboot.mount
    install -d ${D}/uboot
}
