"""Pure rules for which port numbers homeport may hand out, and in what order.

No I/O here: the ephemeral range and the set of busy ports are passed in.

A port is a candidate when it is

* >= 1024 (below needs CAP_NET_BIND_SERVICE on most systems, and 0-1023 are IANA's
  system ports, RFC 6335 §6);
* outside the kernel's ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``):
  ``connect()`` and ``bind(0)`` take source ports from there at any moment, so a number
  picked inside it can be stolen by an unrelated outgoing connection before the server
  binds it, and a waiter polling it can connect to itself;
* not a port that popular dev servers claim by default (:data:`DEV_PORTS`), so a picked
  port does not block the next ``npm run dev`` or ``redis-server``.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

#: Ports that well-known development servers and databases take by default. Data, not
#: logic: add a line when a tool's default collides with picked ports.
DEV_PORTS: frozenset[int] = frozenset(
    {
        1080,
        1433,
        1521,
        2375,
        2376,
        2379,
        2380,
        3000,
        3001,
        3002,
        3003,
        3030,
        3306,
        3333,
        4000,
        4200,
        4242,
        4321,
        4443,
        4444,
        4567,
        5000,
        5001,
        5005,
        5173,
        5174,
        5432,
        5433,
        5500,
        5555,
        5601,
        5672,
        5900,
        6006,
        6379,
        6443,
        6606,
        7000,
        7001,
        7474,
        7687,
        8000,
        8001,
        8008,
        8025,
        8069,
        8080,
        8081,
        8082,
        8088,
        8443,
        8787,
        8888,
        8889,
        9000,
        9001,
        9090,
        9091,
        9092,
        9200,
        9229,
        9230,
        9292,
        9300,
        9418,
        9999,
        11211,
        11434,
        15672,
        19000,
        19006,
        24678,
        27017,
        62893,
    }
)

#: Lowest port handed out: the first non-system port (RFC 6335 §6).
MIN_PORT = 1024
MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class PortPolicy:
    """Where ports may be picked from on this machine."""

    ephemeral: tuple[int, int] = (32768, 60999)
    low: int = MIN_PORT
    high: int = MAX_PORT
    avoid: frozenset[int] = DEV_PORTS

    def allowed(self, port: int) -> bool:
        lo, hi = self.ephemeral
        return self.low <= port <= self.high and not lo <= port <= hi and port not in self.avoid

    def spans(self) -> tuple[tuple[int, int], ...]:
        """The allowed ranges (inclusive) around the ephemeral range, ignoring ``avoid``."""
        return _spans(self.low, self.high, self.ephemeral)

    def size(self) -> int:
        return sum(b - a + 1 for a, b in self.spans())


@functools.lru_cache(maxsize=256)
def _spans(low: int, high: int, ephemeral: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """Cached: the picker asks several times per candidate."""
    lo, hi = ephemeral
    out = []
    if low < lo:
        out.append((low, min(high, lo - 1)))
    if hi < high:
        out.append((max(low, hi + 1), high))
    if lo > high or hi < low:
        out = [(low, high)]
    return tuple((a, b) for a, b in out if a <= b)


def parse_range(text: str) -> tuple[int, int]:
    """``LO-HI`` as typed on the command line; ValueError when it is not one."""
    lo_s, sep, hi_s = text.partition("-")
    if not sep:
        raise ValueError(f"not a range: {text!r} (expected LO-HI, e.g. 20000-29999)")
    lo, hi = int(lo_s), int(hi_s)
    if not 1 <= lo <= hi <= MAX_PORT:
        raise ValueError(f"bad range {text!r}: need 1 <= LO <= HI <= {MAX_PORT}")
    return lo, hi


def _nth(policy: PortPolicy, index: int) -> int:
    """The index-th port of the concatenated allowed spans (index taken modulo size)."""
    return _nth_in(policy.spans(), index % policy.size())


def _nth_in(spans: tuple[tuple[int, int], ...], index: int) -> int:
    for a, b in spans:
        width = b - a + 1
        if index < width:
            return a + index
        index -= width
    raise AssertionError("unreachable: index reduced modulo size")


def name_slot(name: str, policy: PortPolicy) -> int:
    """A stable port for ``name``: the same on every run and every machine with the
    same policy (a hash, not Python's salted ``hash()``)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return _nth(policy, int.from_bytes(digest, "big"))


def candidates(
    policy: PortPolicy, *, start: int | None = None, rng: random.Random | None = None
) -> Iterator[int]:
    """Every allowed port once, in probing order.

    With ``start`` (a named pick) the walk is linear from it, so a name whose slot is
    busy lands next door and keeps that port later. Without, it begins at a random
    point (parallel pickers spread over the whole range instead of queueing on the same
    numbers) and strides by a step coprime with the span size.
    """
    size = policy.size()
    if size == 0:
        return
    if start is not None:
        first, step = _index_of(policy, start), 1
    else:
        first = int((rng or random).random() * size)  # ~10x cheaper than randrange
        step = _stride(size)
    spans, avoid = policy.spans(), policy.avoid
    for i in range(size):
        port = _nth_in(spans, (first + i * step) % size)
        if port not in avoid:
            yield port


def _index_of(policy: PortPolicy, port: int) -> int:
    index = 0
    for a, b in policy.spans():
        if a <= port <= b:
            return index + port - a
        index += b - a + 1
    return 0


@functools.lru_cache(maxsize=64)
def _stride(size: int) -> int:
    """A fixed stride near the golden ratio of the span, coprime with it so the walk
    visits every index once. Randomness comes from the start; the stride only spreads a
    walk that must go on past a taken number away from its neighbours (which a picker
    running in parallel is likely to be leasing)."""
    step = max(1, int(size * 0.6180339887))
    while math.gcd(step, size) != 1:
        step += 1
    return step
