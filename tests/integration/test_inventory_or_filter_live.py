"""The kernel accepts the OR port program and the one-walk TCP dump, and both return what
the per-family SOCK_DIAG_BY_FAMILY dumps return."""

from __future__ import annotations

import socket

from homeport.inventory import netlink


def _per_family(states: int, flt: netlink.PortFilter | None) -> set[netlink.Socket]:
    out: set[netlink.Socket] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, netlink.NETLINK_SOCK_DIAG) as sk:
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
            sk.send(netlink.build_request(family, "tcp", states, seq, flt))
            out.update(netlink._receive(sk, "tcp"))
    return out


def test_any_side_filter_returns_server_and_client_ends() -> None:
    with socket.socket(socket.AF_INET6) as srv:
        srv.bind(("::1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        with socket.create_connection(("::1", port), timeout=5) as cli:
            conn, _ = srv.accept()
            with conn:
                flt = netlink.PortFilter(port, "any")
                got = netlink.dump(("tcp",), False, flt)  # the one-walk request
                src = _per_family(netlink.ALL_STATES, netlink.PortFilter(port, "src"))
                dst = _per_family(netlink.ALL_STATES, netlink.PortFilter(port, "dst"))
                client_port = cli.getsockname()[1]
    ends = {(s.local_port, s.remote_port, s.state) for s in got}
    assert set(got) == src | dst
    assert (port, 0, "LISTEN") in ends
    assert (port, client_port, "ESTABLISHED") in ends  # the accepted end
    assert (client_port, port, "ESTABLISHED") in ends  # the client's end


def test_one_walk_dump_sees_both_families() -> None:
    with socket.socket(socket.AF_INET) as v4, socket.socket(socket.AF_INET6) as v6:
        v4.bind(("127.0.0.1", 0))
        v6.bind(("::1", 0))
        v4.listen()
        v6.listen()
        want = {("127.0.0.1", v4.getsockname()[1]), ("::1", v6.getsockname()[1])}
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 4) as sk:
            both = netlink._dump_tcp_compat(sk, netlink.ALL_STATES, 1, None)
    assert both is not None, "this kernel refused TCPDIAG_GETSOCK"
    assert want <= {(s.local_addr, s.local_port) for s in both}
