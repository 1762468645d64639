"""The testbed's ports come from below the kernel's ephemeral range, so no outgoing connection takes one between the
moment it is picked and the moment its process binds it (testbed/ports.py)."""

from __future__ import annotations

import random
import socket

import pytest

from gpu_policy.testbed import cluster, ports


class FixedStart(random.Random):
    def __init__(self, start: int) -> None:
        super().__init__(0)
        self.start = start

    def randrange(self, *args: int, **kwargs: int) -> int:  # type: ignore[override]
        return self.start


def test_ports_are_distinct_free_and_below_the_ephemeral_range() -> None:
    picked = ports.free_ports(16)
    assert len(set(picked)) == 16
    assert all(ports.LOWEST <= p < ports.ephemeral_low() for p in picked), picked
    for port in picked:  # free: each can be bound now
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((ports.LOOPBACK, port))


def test_a_port_in_use_is_passed_over() -> None:
    start = ports.free_ports(1)[0]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((ports.LOOPBACK, start))  # the run's random start is in use: it goes on from the next port
        picked = ports.free_ports(3, FixedStart(start))
    assert start not in picked and len(set(picked)) == 3
    assert all(start < p <= start + 10 for p in picked), (start, picked)


def test_without_room_below_the_range_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "ephemeral_low", lambda default=32768: ports.LOWEST + 10)
    picked = ports.free_ports(5)
    assert len(set(picked)) == 5 and all(p > ports.LOWEST + 10 or p < ports.LOWEST for p in picked), picked


def test_the_cluster_names_its_ports() -> None:
    named = cluster.free_ports(["etcd", "kube-apiserver", "keda-webhooks"])
    assert set(named) == {"etcd", "kube-apiserver", "keda-webhooks"} and len(set(named.values())) == 3
    assert all(ports.LOWEST <= p < ports.ephemeral_low() for p in named.values())
