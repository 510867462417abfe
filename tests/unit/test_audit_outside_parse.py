"""Pure helpers of the outside-in probe: capabilities, addresses, subnets, stale names."""

from __future__ import annotations

import ipaddress
import json
import random

from homeport.audit import outside


def test_cap_eff() -> None:
    text = "Name:\tpython\nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000001000\n"
    assert outside.parse_cap_eff(text) == 1 << 12
    assert outside.parse_cap_eff("") == 0


IP_J = json.dumps(
    [
        {
            "ifname": "lo",
            "addr_info": [
                {"local": "127.0.0.1", "prefixlen": 8},
                {"local": "::1", "prefixlen": 128},
            ],
        },
        {
            "ifname": "eth0",
            "addr_info": [
                {"local": "192.0.2.2", "prefixlen": 24},
                {"local": "fe80::1", "prefixlen": 64},
                {"local": "fd00::2", "prefixlen": 64},
            ],
        },
        {"ifname": "hpa123h", "addr_info": [{"local": "198.18.0.1", "prefixlen": 30}]},
        {"ifname": "wide", "addr_info": [{"local": "198.18.0.9", "prefixlen": 16}]},
    ]
)


def test_targets_skip_loopback_link_local_and_our_veths() -> None:
    addrs = outside.parse_ip_addr_json(IP_J)
    assert outside.own_targets(addrs) == ["192.0.2.2", "fd00::2", "198.18.0.9"]


def test_pick_subnet_avoids_configured_networks() -> None:
    addrs = outside.parse_ip_addr_json(IP_J)
    n = outside.pick_subnet(addrs, random.Random(7))
    net = ipaddress.ip_network(f"{ipaddress.ip_address('198.18.0.0') + 4 * n}/30")
    assert net.subnet_of(ipaddress.ip_network("198.18.0.0/15"))
    assert not net.overlaps(ipaddress.ip_network("198.18.0.0/16"))


def test_stale_namespaces_are_ours_with_dead_pids() -> None:
    names = ["hpaudit-100-0 (id: 3)", "hpaudit-200-1", "other-300-0", "hpaudit-x-0", ""]
    assert outside.stale_namespaces(names, lambda pid: pid == 200) == ["hpaudit-100-0"]


def test_parse_attempts() -> None:
    text = '{"address": "198.18.1.1", "port": 80, "reach": "timeout"}\n\n'
    assert outside.parse_attempts(text) == [outside.Attempt("198.18.1.1", 80, "timeout")]
