# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
#
# meta-python scarthgap has 2.18.0; everest-py needs >= 2.19 (app/pyproject.toml).
SUMMARY = "Fast JSON schema validator: compiles a schema into Python code"
DESCRIPTION = "Turns a JSON schema (drafts 04, 06, 07) into Python code once, so that validating \
               is a plain function call."
# nooelint: oelint.vars.homepageping - CI runs offline; the page was checked when the recipe was written
HOMEPAGE = "https://github.com/horejsek/python-fastjsonschema"
BUGTRACKER = "https://github.com/horejsek/python-fastjsonschema/issues"
SECTION = "devel/python"
LICENSE = "BSD-3-Clause"
LIC_FILES_CHKSUM = "file://LICENSE;md5=18950e8362b69c0c617b42b8bd8e7532"

CVE_PRODUCT = "python:${PYPI_PACKAGE}"

SRC_URI[sha256sum] = "8330c91b027dcf941efcb7b1f0998515ff95d177ea15bbabdfe8671965620901"

inherit pypi setuptools3

RDEPENDS:${PN} = "\
    python3-core \
    python3-json \
    python3-netclient \
    python3-numbers \
"

BBCLASSEXTEND = "native nativesdk"
