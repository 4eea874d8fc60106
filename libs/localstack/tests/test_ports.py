"""Ports handed to later-started processes stay out of the kernel's ephemeral range, apart
per xdist worker, and are not handed out twice."""

from __future__ import annotations

import socket

import pytest

from tickwire.localstack.ports import (CLUSTER_BUS_OFFSET, PortPool, ephemeral_low, free_node_ports,
                                       free_port, pool)


def test_the_pool_and_its_bus_ports_sit_below_the_ephemeral_range():
    ports = pool(None, None, 32_768)
    assert ports.start >= 10_000 and ports.stop - 1 + CLUSTER_BUS_OFFSET < 32_768


def test_xdist_workers_draw_from_disjoint_slices():
    slices = [set(pool(f"gw{i}", "3", 32_768)) for i in range(3)]
    assert all(slices) and not (slices[0] & slices[1] or slices[1] & slices[2] or slices[0] & slices[2])


def test_a_low_ephemeral_range_falls_back_to_kernel_ports():
    assert not pool(None, None, 15_000)
    assert PortPool(range(0)).take() > 0


def test_the_ephemeral_range_is_read_from_the_kernel(tmp_path):
    (tmp_path / "range").write_text("40000\t60999\n")
    assert ephemeral_low(tmp_path / "range") == 40_000
    assert ephemeral_low(tmp_path / "missing") == 32_768


def test_free_ports_are_distinct_bindable_and_not_ephemeral():
    low = ephemeral_low()
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == 200
    assert all(port < low for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))


def test_a_port_something_holds_is_skipped():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        with pytest.raises(OSError, match=str(port)):
            PortPool(range(port, port + 1)).take()


def test_node_ports_have_a_free_bus_port():
    for port in free_node_ports(6):
        with socket.socket() as bus:
            bus.bind(("127.0.0.1", port + CLUSTER_BUS_OFFSET))
