# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""Register model files of GenericPowermeter: finding, reading and checking them.

The format is EVerest's (``models/*.yaml`` of its GenericPowermeter): one entry per quantity,
each with the registers of the first level (the total, or the DC value) and optionally ``L1``,
``L2``, ``L3`` for the phases::

    power_W:
      start_register: 30053          # datasheet number of the first register, 0: not present
      function_code_start_reg: 4     # 3 holding registers, 4 input registers
      num_registers: 2               # 0: not present
      multiplier: 1                  # value * multiplier * 10^exponent
      exponent_register: 0           # register with a signed power of ten, 0: none
      function_code_exp_reg: 4
      L1: {...same keys...}

Two optional keys are everest-py additions: ``data_type`` (``uint16``, ``int16``, ``uint32``,
``int32``, ``float32``, ``uint64``, ``int64``; by default 1 register is ``uint16`` and 2 are
``float32``) and ``word_order`` (``big``, the default: the high word comes first; ``little``).

Every problem is reported with the file and the key: ``<file>: power_W.L1.num_registers: ...``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from everest_py.errors import ConfigError

QUANTITIES = (
    "energy_Wh_import",
    "energy_Wh_export",
    "power_W",
    "voltage_V",
    "reactive_power_VAR",
    "current_A",
    "frequency_Hz",
)
PHASES = ("L1", "L2", "L3")
FIRST_LEVEL = ""

REGISTER_KEYS = (
    "start_register",
    "function_code_start_reg",
    "num_registers",
    "multiplier",
    "exponent_register",
    "function_code_exp_reg",
)
OPTIONAL_KEYS = ("data_type", "word_order")
FUNCTION_CODES = (3, 4)

# data type -> registers it takes
DATA_TYPES = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2, "uint64": 4, "int64": 4}
DEFAULT_DATA_TYPE = {1: "uint16", 2: "float32"}
WORD_ORDERS = ("big", "little")

MODELS_DIR = Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class Source:
    """Where one value of the model comes from, as the file gives it."""

    quantity: str
    level: str  # FIRST_LEVEL or a phase
    start_register: int
    function_code: int
    num_registers: int
    data_type: str
    word_order: str
    multiplier: float
    exponent_register: int  # 0: no exponent register
    exponent_function_code: int

    @property
    def key(self) -> str:
        """The key path in the model file."""
        return f"{self.quantity}.{self.level}" if self.level else self.quantity


@dataclass(frozen=True)
class MeterModel:
    path: Path
    sources: tuple[Source, ...]

    def source(self, quantity: str, level: str = FIRST_LEVEL) -> Source | None:
        return next((s for s in self.sources if s.quantity == quantity and s.level == level), None)


def find_model(name: str, models_dir: Path = MODELS_DIR) -> Path:
    """The file of model ``name``: ``models_dir/<name>.yaml``, or ``name`` itself if it is an absolute path."""
    if not name:
        raise ConfigError(["model: empty; name a file of the models folder or give an absolute path"])
    if Path(name).is_absolute():
        path = Path(name)
        if not path.is_file():
            raise ConfigError([f"model: {path} does not exist"])
        return path
    if ".." in name or "/" in name:
        raise ConfigError([f"model: '{name}' must be a plain name (a file of the models folder) or an absolute path"])
    path = models_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in models_dir.glob("*.yaml"))) or "none"
        raise ConfigError([f"model: no model '{name}' in {models_dir} (known: {known})"])
    return path


def load_model(path: Path) -> MeterModel:
    """Read and check a model file; ConfigError lists every problem, one line each."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError([f"{path}: cannot be read: {err.strerror or err}"]) from err
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f"line {where.line + 1}: " if where is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError([f"{path}: {line}not valid YAML: {problem}"]) from err
    issues: list[str] = []
    sources: list[Source] = []
    if not isinstance(raw, Mapping):
        raise ConfigError([f"{path}: must be a mapping of quantities ({', '.join(QUANTITIES)})"])
    for key in raw:
        if key not in QUANTITIES:
            issues.append(f"{path}: {key}: unknown quantity (known: {', '.join(QUANTITIES)})")
    for quantity in QUANTITIES:
        entry = raw.get(quantity)
        if entry is None:
            continue
        if not isinstance(entry, Mapping):
            issues.append(f"{path}: {quantity}: must be a mapping of register keys")
            continue
        for key in entry:
            if key not in (*REGISTER_KEYS, *OPTIONAL_KEYS, *PHASES):
                issues.append(f"{path}: {quantity}.{key}: unknown key")
        source = _source(path, quantity, FIRST_LEVEL, entry, issues)
        if source is not None:
            sources.append(source)
        for phase in PHASES:
            sub = entry.get(phase)
            if sub is None:
                continue
            if not isinstance(sub, Mapping):
                issues.append(f"{path}: {quantity}.{phase}: must be a mapping of register keys")
                continue
            for key in sub:
                if key not in (*REGISTER_KEYS, *OPTIONAL_KEYS):
                    issues.append(f"{path}: {quantity}.{phase}.{key}: unknown key")
            source = _source(path, quantity, phase, sub, issues)
            if source is not None:
                sources.append(source)
    model = MeterModel(path, tuple(sources))
    issues += _interface_rules(model)
    if issues:
        raise ConfigError(issues)
    return model


def _source(path: Path, quantity: str, level: str, entry: Mapping[str, Any], issues: list[str]) -> Source | None:
    """The Source of one entry, or None if the entry reads nothing; problems go to ``issues``."""
    where = f"{path}: {quantity}.{level}" if level else f"{path}: {quantity}"
    before = len(issues)

    def integer(key: str, low: int, high: int, required: bool) -> int:
        value = entry.get(key)
        if value is None:
            if required:
                issues.append(f"{where}.{key}: missing")
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            issues.append(f"{where}.{key}: must be an integer from {low} to {high}, not {value!r}")
            return 0
        return value

    if not any(key in entry for key in REGISTER_KEYS):
        return None  # a quantity given only by its phases
    count = integer("num_registers", 0, 4, True)
    if "num_registers" not in entry or count == 0:
        return None  # EVerest's rule: num_registers 0 means the value is not present
    start = integer("start_register", 1, 65535, True)
    fc = _function_code(entry, "function_code_start_reg", where, issues, required=True)
    exponent = integer("exponent_register", 0, 65535, True)
    exp_fc = _function_code(entry, "function_code_exp_reg", where, issues, required=True)
    multiplier = entry.get("multiplier")
    if multiplier is None:
        issues.append(f"{where}.multiplier: missing")
    elif isinstance(multiplier, bool) or not isinstance(multiplier, int | float) or multiplier == 0:
        issues.append(f"{where}.multiplier: must be a number other than 0, not {multiplier!r}")
    data_type = entry.get("data_type", DEFAULT_DATA_TYPE.get(count))
    if data_type is None:
        issues.append(f"{where}.data_type: missing; {count} registers need one ({', '.join(DATA_TYPES)})")
    elif data_type not in DATA_TYPES:
        issues.append(f"{where}.data_type: must be one of {', '.join(DATA_TYPES)}, not {data_type!r}")
    elif DATA_TYPES[data_type] != count:
        issues.append(
            f"{where}.data_type: {data_type} takes {DATA_TYPES[data_type]} register(s), num_registers is {count}"
        )
    word_order = entry.get("word_order", "big")
    if word_order not in WORD_ORDERS:
        issues.append(f"{where}.word_order: must be big or little, not {word_order!r}")
    if len(issues) > before:
        return None
    return Source(
        quantity=quantity,
        level=level,
        start_register=start,
        function_code=fc,
        num_registers=count,
        data_type=str(data_type),
        word_order=str(word_order),
        multiplier=float(multiplier),  # type: ignore[arg-type]  # checked above
        exponent_register=exponent,
        exponent_function_code=exp_fc,
    )


def _function_code(entry: Mapping[str, Any], key: str, where: str, issues: list[str], required: bool) -> int:
    value = entry.get(key)
    if value is None:
        if required:
            issues.append(f"{where}.{key}: missing")
        return 0
    if isinstance(value, bool) or value not in FUNCTION_CODES:
        issues.append(f"{where}.{key}: must be 3 (holding registers) or 4 (input registers), not {value!r}")
        return 0
    return int(value)


def _interface_rules(model: MeterModel) -> list[str]:
    """What the powermeter interface needs of a model (types/powermeter.yaml, types/units.yaml)."""
    issues = []
    if not any(s.quantity == "energy_Wh_import" for s in model.sources):
        issues.append(
            f"{model.path}: energy_Wh_import: reads no register; the powermeter interface requires the imported energy"
        )
    if model.source("frequency_Hz") is not None and model.source("frequency_Hz", "L1") is not None:
        issues.append(
            f"{model.path}: frequency_Hz.L1: the first level of frequency_Hz is reported as L1 already; "
            "keep one of them"
        )
    phases_only = [s for s in model.sources if s.quantity == "frequency_Hz"]
    if phases_only and model.source("frequency_Hz") is None and model.source("frequency_Hz", "L1") is None:
        issues.append(f"{model.path}: frequency_Hz: the powermeter interface needs L1 (the first level or L1)")
    return issues
