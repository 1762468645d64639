"""Free TCP ports on 127.0.0.1 for the testbed's processes, chosen below the kernel's ephemeral range.

A port the kernel picks for `bind(("127.0.0.1", 0))` comes from net.ipv4.ip_local_port_range (32768-60999 by default),
the range every outgoing connection takes its local port from. The testbed picks its ports before it starts the
processes that bind them, up to tens of seconds later (KEDA's webhooks bind after the control plane is ready), and
meanwhile the controllers, kwok and the readiness probes open thousands of connections: one took a picked port
("bind: address already in use", seen on this machine with two testbeds starting at once). Ports below that range are
never handed to an outgoing connection. They are taken as one run of consecutive ports from a random start, each
checked by binding it (all held until the run is complete), so two testbeds starting together overlap only when
their random starts fall within a run's length of each other.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"
LOWEST = 20000
"""The lowest port handed out: above the registered ports services commonly use."""
RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_low(default: int = 32768) -> int:
    """The lowest port of the kernel's ephemeral range (Linux), or `default` when it cannot be read."""
    try:
        return int(RANGE_FILE.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return default


def _bound(port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((LOOPBACK, port))
    except OSError:
        sock.close()
        return None
    return sock


def free_ports(count: int, rng: random.Random | None = None) -> list[int]:
    """`count` distinct free ports on 127.0.0.1, below the ephemeral range when there is room (else the kernel's
    choice, which is what a machine with an unusual range gets)."""
    chooser = rng or random.SystemRandom()
    high = ephemeral_low()
    held: list[socket.socket] = []
    try:
        if high - LOWEST >= 4 * max(count, 1):
            port = chooser.randrange(LOWEST, high - count)
            tried = 0
            while len(held) < count and tried < high - LOWEST:
                sock = _bound(port)
                if sock is not None:
                    held.append(sock)
                port = port + 1 if port + 1 < high else LOWEST
                tried += 1
        while len(held) < count:  # no room below the range, or too few free ports there: the kernel chooses
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            held.append(sock)
        return [int(sock.getsockname()[1]) for sock in held]
    finally:
        for sock in held:
            sock.close()
