# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
#
# meta-python scarthgap has 3.6.7; everest-py needs >= 3.8 (bsp/pyproject.toml: the ModbusPDU
# and FramerType API).
SUMMARY = "A full Modbus protocol implementation (client, server, simulator)"
DESCRIPTION = "Modbus client and server in Python (RTU, ASCII, TCP, TLS, UDP), on asyncio with a \
               synchronous client API."
# nooelint: oelint.vars.homepageping - CI runs offline; the page was checked when the recipe was written
HOMEPAGE = "https://github.com/pymodbus-dev/pymodbus"
BUGTRACKER = "https://github.com/pymodbus-dev/pymodbus/issues"
SECTION = "devel/python"
LICENSE = "BSD-3-Clause"
LIC_FILES_CHKSUM = "file://LICENSE;md5=12a490c6cffa2e76a6df8aa1fa29e183"

CVE_PRODUCT = "python:${PYPI_PACKAGE}"

SRC_URI[sha256sum] = "19e571826dff37860afc31c845c1fd2fb72acffca02a233506b32d94fa022c33"

inherit pypi python_setuptools_build_meta

PACKAGECONFIG ??= "serial"
# Modbus RTU over serial lines (the "serial" extra).
PACKAGECONFIG[serial] = ",,,python3-pyserial"
# The web simulator (the "simulator" extra).
PACKAGECONFIG[simulator] = ",,,python3-aiohttp"

RDEPENDS:${PN} = "\
    python3-asyncio \
    python3-core \
    python3-datetime \
    python3-io \
    python3-json \
    python3-logging \
    python3-math \
"

BBCLASSEXTEND = "native nativesdk"
