# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
#
# oe-core scarthgap has 12.0; everest-py needs >= 13 (the websockets.asyncio server).
# 15.0.1 is the newest release whose pyproject.toml scarthgap's setuptools 69 understands
# (later ones use a PEP 639 license expression).
SUMMARY = "An implementation of the WebSocket Protocol (RFC 6455 and 7692)"
DESCRIPTION = "WebSocket servers and clients on asyncio (and threads), with the framing hot path \
               in C."
# nooelint: oelint.vars.homepageping - CI runs offline; the page was checked when the recipe was written
HOMEPAGE = "https://github.com/python-websockets/websockets"
BUGTRACKER = "https://github.com/python-websockets/websockets/issues"
SECTION = "devel/python"
LICENSE = "BSD-3-Clause"
LIC_FILES_CHKSUM = "file://LICENSE;md5=51924a6af4495b8cfaee1b1da869b6f4"

CVE_PRODUCT = "python:websockets websockets_project:websockets"

SRC_URI[sha256sum] = "82544de02076bafba038ce055ee6412d68da13ab47f0c60cab827346de828dee"

inherit pypi python_setuptools_build_meta

# Fail the build instead of silently shipping without the C speedups (frame masking).
export BUILD_EXTENSION = "yes"

RDEPENDS:${PN} = "\
    python3-asyncio \
    python3-core \
    python3-crypt \
    python3-email \
    python3-io \
    python3-logging \
    python3-math \
    python3-netclient \
    python3-threading \
"

BBCLASSEXTEND = "native nativesdk"
