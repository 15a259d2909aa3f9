# nooelint: oelint.var.mandatoryvar.HOMEPAGE,oelint.var.suggestedvar.BUGTRACKER,oelint.var.suggestedvar.CVE_PRODUCT,oelint.var.bbclassextend - everest-py has no public home page, tracker or NVD entry yet; built for the target only
# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
SUMMARY = "everest-py board support: chargebyte Charge Control C and Charge SOM"
DESCRIPTION = "Hardware access (GPIO, PWM, IIO), the Tarragon control-pilot core in C through \
               cffi, board drivers, meters and the simulated board, built from bsp/ of the \
               repository this layer lives in."
SECTION = "devel/python"

EVEREST_PY_DIST = "bsp"
EVEREST_PY_PACKAGE = "everest_bsp"
# tests/bsp imports helpers of tests/modules, so ptest installs both and runs tests/bsp.
EVEREST_PY_PTEST_DIRS = "bsp modules"
EVEREST_PY_PTEST_RUN = "bsp"

require everest-py-source.inc

# bsp/setup.py names the cffi build script (cffi_modules): the C helpers are compiled here, for
# the target, and never on the charger.
DEPENDS += "\
    python3-cffi-native \
    python3-pycparser-native \
    python3-setuptools-native \
"

# One block, one package per line (see python3-everest-py).
RDEPENDS:${PN} = "\
    python3-asyncio \
    python3-cffi \
    python3-core \
    python3-curses \
    python3-datetime \
    python3-everest-py \
    python3-gpiod \
    python3-io \
    python3-json \
    python3-logging \
    python3-math \
    python3-pymodbus \
    python3-pyserial \
    python3-pyyaml \
    python3-threading \
"

# As python3-everest-py-ptest; besides, the simulated RS-485 meter runs on a pty pair (socat) and
# the terminal UIs are driven in tmux.
RDEPENDS:${PN}-ptest = "\
    mosquitto \
    mosquitto-clients \
    python3-hypothesis \
    python3-pytest \
    python3-unittest-automake-output \
    socat \
    tmux \
"
