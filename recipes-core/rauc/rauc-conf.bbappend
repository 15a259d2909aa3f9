FILESEXTRAPATHS:prepend:everest-py := "${THISDIR}/files:"
