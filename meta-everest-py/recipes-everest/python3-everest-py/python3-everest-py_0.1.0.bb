# nooelint: oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER,oelint.var.suggestedvar.CVE_PRODUCT,oelint.var.bbclassextend - everest-py has no public home page, tracker or NVD entry yet; built for the target only
# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
SUMMARY = "everest-py: EVerest-compatible EV charging station stack in Python"
DESCRIPTION = "The framework (manager, module runtime, MQTT bus), the contracts and the charging \
               modules of everest-py, built from app/ of the repository this layer lives in."
SECTION = "devel/python"

EVEREST_PY_DIST = "app"
EVEREST_PY_PACKAGE = "everest_py"
EVEREST_PY_PTEST_DIRS = "framework modules integration tools"
EVEREST_PY_PTEST_RUN = "framework modules integration tools"

require everest-py-source.inc

# One block, one package per line: tests/layer reads this list to check that every import of
# app/ is covered.  Stdlib parts are the split python3-* packages of oe-core's manifest.
RDEPENDS:${PN} = "\
    python3-asyncio \
    python3-core \
    python3-ctypes \
    python3-datetime \
    python3-email \
    python3-fastjsonschema \
    python3-fcntl \
    python3-io \
    python3-json \
    python3-logging \
    python3-netclient \
    python3-numbers \
    python3-paho-mqtt \
    python3-pyyaml \
    python3-sqlite3 \
    python3-websockets \
"

# The tests run against a real mosquitto (and make TLS certificates with cryptography); pytest
# reports in Automake format for ptest-runner.
RDEPENDS:${PN}-ptest = "\
    mosquitto \
    python3-cryptography \
    python3-hypothesis \
    python3-pytest \
    python3-unittest-automake-output \
"
