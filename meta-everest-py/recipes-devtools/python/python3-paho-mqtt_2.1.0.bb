# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
#
# meta-python scarthgap has 2.0.0; everest-py needs >= 2.1 (app/pyproject.toml).
SUMMARY = "MQTT 3.1/3.1.1/5.0 client library"
DESCRIPTION = "The Eclipse Paho MQTT client: MQTT 3.1, 3.1.1 and 5.0 over TCP, TLS, WebSocket and \
               unix sockets, with a network loop of its own or driven by the caller."
# nooelint: oelint.vars.homepageping - CI runs offline; the page was checked when the recipe was written
HOMEPAGE = "https://eclipse.dev/paho/"
BUGTRACKER = "https://github.com/eclipse-paho/paho.mqtt.python/issues"
SECTION = "devel/python"
LICENSE = "EPL-2.0 | BSD-3-Clause"
LIC_FILES_CHKSUM = "\
    file://LICENSE.txt;md5=8e5f264c6988aec56808a3a11e77b913 \
    file://edl-v10;md5=c09f121939f063aeb5235972be8c722c \
    file://epl-v20;md5=2dd765ca47a05140be15ebafddbeadfe \
"

PYPI_PACKAGE = "paho_mqtt"
UPSTREAM_CHECK_PYPI_PACKAGE = "paho-mqtt"

CVE_PRODUCT = "python:${PYPI_PACKAGE}"

SRC_URI[sha256sum] = "12d6e7511d4137555a3f6ea167ae846af2c7357b10bc6fa4f7c3968fc1723834"

inherit pypi python_hatchling

RDEPENDS:${PN} = "\
    python3-core \
    python3-crypt \
    python3-io \
    python3-logging \
    python3-netclient \
    python3-stringold \
"

BBCLASSEXTEND = "native nativesdk"
