"""Which DCGM fields describe the GPU hardware itself rather than the workload running on it.

Temperature, power and energy, clocks and clock-event (throttle) reasons, XID errors, ECC errors, retired pages,
remapped rows, PCIe replays, NVLink errors and the throttling "violation" counters are the sections of the
exporter's collector list that are about the board (NVIDIA/dcgm-exporter etc/default-counters.csv: "# Clocks",
"# Temperature", "# Power", "# PCIE", "# Errors and violations", "# ECC", "# Retired pages", "# NVLink",
"# Remapped rows"). An alert on them is acted on per GPU and node (drain, RMA), not per pod, whatever pod
happens to hold the GPU.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_HARDWARE = re.compile(
    r"^DCGM_FI_(?:DEV|PROF)_(?:"
    r".*_TEMP(?:_.*)?|.*TEMP"  # GPU_TEMP, MEMORY_TEMP, SLOWDOWN_TEMP, SHUTDOWN_TEMP
    r"|POWER_.*|.*_POWER_.*|TOTAL_ENERGY_CONSUMPTION|ENFORCED_POWER_LIMIT"
    r"|SM_CLOCK|MEM_CLOCK|VIDEO_CLOCK|APP_.*CLOCK|MAX_.*CLOCK|CLOCK_THROTTLE_REASONS|CLOCKS_EVENT_REASONS"
    r"|XID_ERRORS"
    r"|ECC_.*"
    r"|RETIRED_.*"
    r"|.*REMAPPED_ROWS|ROW_REMAP_.*"
    r"|PCIE_REPLAY_COUNTER"
    r"|NVLINK_.*ERROR.*"
    r"|.*_VIOLATION"
    r"|FAN_SPEED|PSTATE"
    r")$"
)


def is_hardware_health(metric: str) -> bool:
    """A DCGM field about the board's health (temperature, power, clocks, XID, ECC, NVLink errors, ...)."""
    return _HARDWARE.match(metric) is not None


def all_hardware_health(metrics: Iterable[str]) -> bool:
    """Every DCGM field of an expression is a hardware-health field (and there is at least one)."""
    names = list(metrics)
    return bool(names) and all(is_hardware_health(m) for m in names)
