# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""cffi build script (API mode): compiles every C helper in this folder into ``everest_bsp._native``.

Run by setuptools through ``cffi_modules`` when the wheel is built; never on the charger.
Each ``<name>_cdef.h`` holds the declarations cffi exposes for ``<name>.h``.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent


def _relative(path: Path) -> str:
    # setuptools wants source paths relative to the project (bsp/) and with forward slashes
    return path.relative_to(HERE.parents[2]).as_posix()


def build_ffi() -> FFI:
    ffi = FFI()
    cdefs = sorted(HERE.glob("*_cdef.h"), key=lambda p: (p.name != "simgpio_cdef.h", p.name))
    ffi.cdef("\n".join(p.read_text() for p in cdefs))
    headers = sorted(p.name for p in HERE.glob("*.h") if not p.name.endswith("_cdef.h"))
    ffi.set_source(
        "everest_bsp._native",
        "".join(f'#include "{h}"\n' for h in headers),
        sources=[_relative(p) for p in sorted(HERE.glob("*.c"))],
        include_dirs=[_relative(HERE)],
        extra_compile_args=["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        libraries=["pthread"],
    )
    return ffi


ffibuilder = build_ffi()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
