"""The address pool rules (pure): what may be leased, and in what order."""

from __future__ import annotations

import random
from ipaddress import IPv4Address

import pytest

from homeport.ports.addrpool import (
    DEFAULT_POOL,
    address_at,
    candidates,
    name_start,
    named_in_hosts,
    parse_pool,
    slot,
)


def test_default_pool_skips_the_loopback_default_and_debians_hostname_address() -> None:
    pool = parse_pool(DEFAULT_POOL)
    seen = set(candidates(pool, rng=random.Random(1)))
    assert IPv4Address("127.0.0.1") not in seen
    assert IPv4Address("127.0.1.1") not in seen
    assert not any(int(a) & 0xFF in (0, 255) for a in seen)
    assert IPv4Address("127.0.2.1") in seen
    assert IPv4Address("127.0.255.254") in seen
    assert len(seen) == 254 * 254  # every allowed address exactly once


def test_a_name_walks_linearly_from_its_stable_start() -> None:
    pool = parse_pool("127.0.9.1-127.0.9.20")
    start = name_start("db.shop.localhost", pool)
    assert start == name_start("db.shop.localhost", pool)
    walk = list(candidates(pool, start=start))
    assert walk[0] == start
    assert sorted(walk) == [IPv4Address(f"127.0.9.{i}") for i in range(1, 21)]


@pytest.mark.parametrize(
    "text", ["10.0.0.1-10.0.0.9", "127.0.0.9-127.0.0.1", "127.0.255.1-127.1.0.9", "nonsense"]
)
def test_bad_pools_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="address pool"):
        parse_pool(text)


def test_cidr_pool_and_slots_round_trip() -> None:
    pool = parse_pool("127.42.0.0/16")
    assert pool.prefix16() == "127.42"
    addr = IPv4Address("127.42.7.9")
    assert address_at(pool, slot(addr)) == addr


def test_addresses_named_outside_the_block_are_avoided() -> None:
    hosts = (
        "127.0.0.1 localhost\n127.0.1.1 myhost\n127.0.5.5 someones-name # theirs\n"
        "# BEGIN b\n127.0.6.6  ours.localhost\n# END b\n10.1.2.3 lan\n"
    )
    named = named_in_hosts(hosts, "# BEGIN b", "# END b")
    assert named == {IPv4Address(a) for a in ("127.0.0.1", "127.0.1.1", "127.0.5.5")}
    pool = parse_pool("127.0.5.1-127.0.6.254", named)
    assert not pool.allowed(IPv4Address("127.0.5.5"))
    assert pool.allowed(IPv4Address("127.0.6.6"))


@pytest.mark.parametrize(
    "address", ["127.0.2.1", "127.0.255.254", "127.42.0.7", "::ffff:127.0.9.9"]
)
def test_every_127_8_address_counts_as_loopback_for_ls_and_audit(address: str) -> None:
    from homeport.addr import exposure

    assert exposure(address) == "loopback"
