require ${@bb.utils.contains('DISTRO_FEATURES', 'rauc', 'u-boot-everest-py.inc', '', d)}
