# nooelint: oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER,oelint.var.suggestedvar.CVE_PRODUCT,oelint.var.bbclassextend - everest-py has no public home page, tracker or NVD entry yet; built for the target only
# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
# Not named "everest-py": that is the distro, hence an override, and ${PN} would become one.
SUMMARY = "everest-py on the charger: service, broker configuration, default run configs"
DESCRIPTION = "Runs the everest-py stack as a hardened systemd service against a local-only \
               mosquitto, installs the run configs of the repository's config/ into /etc/everest \
               and prepares the state directory on the data partition."
SECTION = "base"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${WORKDIR}/everest-py/LICENSE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext - config/ and LICENSE are files of this repository, found through the layer's parent directory
FILESEXTRAPATHS:prepend := "${EVEREST_PY_SRCDIR}:"

SRC_URI = "\
    file://LICENSE;subdir=everest-py \
    file://config;subdir=everest-py \
    file://everest-py.service \
    file://everest-py-slac.conf \
    file://everest-py.tmpfiles \
    file://mosquitto-everest-py.conf \
    file://mosquitto.service.conf \
"

S = "${WORKDIR}/everest-py"

inherit features_check systemd

REQUIRED_DISTRO_FEATURES = "systemd"

# The run config /etc/everest/config.yaml points to, per machine.  Empty: none; the service is
# then skipped until everest-py.env on the data partition names one (see everest-py.service).
EVEREST_PY_DEFAULT_CONFIG ??= ""
EVEREST_PY_DEFAULT_CONFIG:tarragon ??= "tarragon-ac.yaml"
EVEREST_PY_DEFAULT_CONFIG:qemuarm64 ??= "sil-ac.yaml"

# What ChargerInfo reports as firmware version (tarragon-ac.yaml reads /etc/everest/VERSION).
EVEREST_PY_FIRMWARE_VERSION ??= "everest-py ${PV} ${MACHINE}"

PACKAGECONFIG ??= "bsp"
# The board support distribution (drivers and the simulated Tarragon board).
PACKAGECONFIG[bsp] = ",,,python3-everest-py-bsp"
# Raw sockets for SLAC (ISO 15118-3): only when a SLAC module is configured.
PACKAGECONFIG[slac] = ""

do_configure[noexec] = "1"
do_compile[noexec] = "1"

do_install() {
    install -d ${D}${sysconfdir}/everest
    for f in ${S}/config/*.yaml ${S}/config/*.txt; do
        install -m 0644 "$f" ${D}${sysconfdir}/everest/
    done
    printf '%s\n' "${EVEREST_PY_FIRMWARE_VERSION}" > ${D}${sysconfdir}/everest/VERSION
    if [ -n "${EVEREST_PY_DEFAULT_CONFIG}" ]; then
        test -f ${D}${sysconfdir}/everest/${EVEREST_PY_DEFAULT_CONFIG} || \
            bbfatal "EVEREST_PY_DEFAULT_CONFIG: no ${EVEREST_PY_DEFAULT_CONFIG} in config/"
        ln -s ${EVEREST_PY_DEFAULT_CONFIG} ${D}${sysconfdir}/everest/config.yaml
    fi
    # /etc is read-only: the user-config overlays live on the data partition.
    ln -s ${localstatedir}/lib/everest/user-config ${D}${sysconfdir}/everest/user-config
    # Mount point of the state directory (a bind mount from the data partition).
    install -d ${D}${localstatedir}/lib/everest

    install -D -m 0644 ${WORKDIR}/everest-py.service ${D}${systemd_system_unitdir}/everest-py.service
    if ${@bb.utils.contains('PACKAGECONFIG', 'slac', 'true', 'false', d)}; then
        install -D -m 0644 ${WORKDIR}/everest-py-slac.conf \
            ${D}${systemd_system_unitdir}/everest-py.service.d/10-slac.conf
    fi
    install -D -m 0644 ${WORKDIR}/everest-py.tmpfiles ${D}${nonarch_libdir}/tmpfiles.d/everest-py.conf

    install -D -m 0644 ${WORKDIR}/mosquitto-everest-py.conf ${D}${sysconfdir}/mosquitto/everest-py.conf
    install -D -m 0644 ${WORKDIR}/mosquitto.service.conf \
        ${D}${systemd_system_unitdir}/mosquitto.service.d/10-everest-py.conf
}

# The default config differs per machine.
PACKAGE_ARCH = "${MACHINE_ARCH}"

SYSTEMD_SERVICE:${PN} = "everest-py.service"

FILES:${PN} += "\
    ${localstatedir}/lib/everest \
    ${nonarch_libdir}/tmpfiles.d \
    ${systemd_system_unitdir} \
"

RDEPENDS:${PN} = "\
    mosquitto \
    python3-everest-py \
"
