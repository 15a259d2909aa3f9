# nooelint: oelint.file.underscores,oelint.var.mandatoryvar.HOMEPAGE,oelint.var.mandatoryvar.SRC_URI,oelint.var.suggestedvar.BUGTRACKER,oelint.var.suggestedvar.CVE_PRODUCT,oelint.var.bbclassextend - a bundle is named like meta-rauc's and versioned by DISTRO_VERSION; it fetches nothing (the image comes from the deploy directory); no public home page or tracker yet
# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
SUMMARY = "everest-py firmware update (RAUC bundle)"
DESCRIPTION = "Signed RAUC bundle with the root filesystem of everest-py-image for the other slot. \
               No hooks: nothing needs copying between slots, all state is on the data partition."
SECTION = "base"
LICENSE = "Apache-2.0"
# nooelint: oelint.var.licenseremotefile - nothing is fetched; the recipe itself is Apache-2.0
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

inherit bundle

# verity: the bundle is checked block by block while it is installed, can be streamed over
# HTTP(S) and allows adaptive updates; the running kernel needs dm-verity.  Set "plain" to
# update a charger whose running system predates that (docs/yocto.md).
RAUC_BUNDLE_FORMAT ?= "verity"

# Must equal "compatible" of the machine's system.conf (tests/layer checks).  The chargebyte
# boards keep chargebyte's strings: an everest-py bundle names the hardware, not the firmware.
RAUC_BUNDLE_COMPATIBLE ?= "everest-py ${MACHINE}"
RAUC_BUNDLE_COMPATIBLE:tarragon = "I2SE Tarragon"
RAUC_BUNDLE_COMPATIBLE:chargesom = "chargebyte Charge SOM"

RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "everest-py ${DISTRO_VERSION} for ${MACHINE}"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "everest-py-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

BUNDLE_BASENAME = "everest-py"

# Adaptive updates (only what changed is fetched) need the verity format.
# nooelint: oelint.task.noanonpython - a varflag can only be set conditionally from Python: an empty value would still write "adaptive=" to the manifest
python () {
    if d.getVar('RAUC_BUNDLE_FORMAT') == 'verity':
        d.setVarFlag('RAUC_SLOT_rootfs', 'adaptive', 'block-hash-index')
}
