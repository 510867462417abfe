"""Pure port policy and lease records: which numbers, in what order, and who holds them."""

from __future__ import annotations

import random

import pytest

from homeport.ports.lease import Holder, Lease, decode, is_live, parse_start_time
from homeport.ports.policy import (
    DEV_PORTS,
    PortPolicy,
    candidates,
    name_slot,
    parse_range,
)

LINUX = PortPolicy(ephemeral=(32768, 60999))


def test_allowed_excludes_system_ephemeral_and_dev_ports() -> None:
    assert not LINUX.allowed(80)
    assert not LINUX.allowed(1023)
    assert LINUX.allowed(1024)
    assert not LINUX.allowed(32768)
    assert not LINUX.allowed(60999)
    assert LINUX.allowed(61000)
    assert LINUX.allowed(32767)
    for port in (3000, 5173, 5432, 6379, 8000, 8080, 8888, 9229):
        assert port in DEV_PORTS
        assert not LINUX.allowed(port)


def test_spans_surround_the_ephemeral_range() -> None:
    assert LINUX.spans() == ((1024, 32767), (61000, 65535))
    assert LINUX.size() == (32767 - 1024 + 1) + (65535 - 61000 + 1)
    inside = PortPolicy(ephemeral=(32768, 60999), low=40000, high=41000)
    assert inside.spans() == ()
    beside = PortPolicy(ephemeral=(32768, 60999), low=20000, high=20009)
    assert beside.spans() == ((20000, 20009),)


def test_random_walk_visits_every_allowed_port_once() -> None:
    policy = PortPolicy(ephemeral=(20005, 20010), low=20000, high=20020, avoid=frozenset({20001}))
    seen = list(candidates(policy, rng=random.Random(7)))
    expected = [p for p in range(20000, 20021) if policy.allowed(p)]
    assert sorted(seen) == expected
    assert len(seen) == len(set(seen))


def test_walks_from_different_seeds_start_in_different_places() -> None:
    firsts = {next(candidates(LINUX, rng=random.Random(seed))) for seed in range(20)}
    assert len(firsts) > 15


def test_named_walk_is_linear_from_the_slot() -> None:
    slot = name_slot("api", LINUX)
    walk = candidates(LINUX, start=slot)
    first_three = [next(walk) for _ in range(3)]
    allowed_after = [p for p in range(slot, slot + 40) if LINUX.allowed(p)][:3]
    assert first_three == allowed_after


def test_name_slot_is_stable_and_allowed() -> None:
    assert name_slot("api", LINUX) == name_slot("api", LINUX)
    slots = {name_slot(f"svc-{i}", LINUX) for i in range(200)}
    assert len(slots) > 190  # a hash spreads names, it does not bunch them
    # Slots may fall on an avoided number; the walk skips it, never hands it out.
    assert all(1024 <= s <= 65535 and not 32768 <= s <= 60999 for s in slots)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("20000-29999", (20000, 29999)), ("1024-1024", (1024, 1024))],
)
def test_parse_range(text: str, expected: tuple[int, int]) -> None:
    assert parse_range(text) == expected


@pytest.mark.parametrize("text", ["20000", "3-2", "0-10", "10-70000", "a-b"])
def test_parse_range_rejects(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the CLI turns any of them into usage
        parse_range(text)


def test_lease_record_round_trips_at_fixed_size() -> None:
    lease = Lease(21034, "tcp", Holder(4242, "123456"), 1.5, 99.5, "api")
    data = lease.encode()
    assert len(data) == 384
    assert decode(data) == lease
    assert decode(b" " * 384) is None
    assert decode(b"\0" * 384) is None
    assert decode(b'{"port": "x"' + b" " * 10) is None


def test_lease_name_too_long_is_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        Lease(1, "tcp", Holder(1, "1"), 0.0, None, "x" * 400).encode()


def test_lease_is_live_only_for_same_start_time_and_before_expiry() -> None:
    holder = Holder(4242, "1000")
    lease = Lease(21034, "tcp", holder, 0.0, 100.0)
    assert is_live(lease, 50.0, holder)
    assert not is_live(lease, 100.0, holder)  # expired
    assert not is_live(lease, 50.0, None)  # holder gone
    assert not is_live(lease, 50.0, Holder(4242, "2000"))  # PID reused by another process
    forever = Lease(21034, "tcp", holder, 0.0, None)
    assert is_live(forever, 1e12, holder)


def test_unbound_lease_ends_only_at_expiry() -> None:
    lease = Lease(21034, "tcp", Holder(4242, "1000"), 0.0, 100.0, bound=False)
    assert is_live(lease, 50.0, None)  # the picker's subshell is long gone
    assert not is_live(lease, 100.0, None)
    assert decode(lease.encode()) == lease


def test_start_time_survives_parentheses_and_spaces_in_the_command_name() -> None:
    fields = " ".join(str(n) for n in range(3, 53))  # fields 3..52
    stat = f"4242 (we (ird) name) {fields}"
    assert parse_start_time(stat) == "22"
