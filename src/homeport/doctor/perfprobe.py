"""The loopback self-test's edge: measure loopback TCP and read what can slow it.

Two processes (this one and a forked peer) exchange over a TCP connection on 127.0.0.1
(TCP_NODELAY), then over an AF_UNIX socket pair, the same way:

- round trip: one byte there and back, each timed (``perf_counter_ns``), as netperf's
  TCP_RR does with a 1-byte request and response;
- throughput: 1 MiB ``sendall`` calls until the time is up, then ``shutdown(SHUT_WR)``;
  the peer counts to EOF and answers the count, and the clock stops at that answer (so
  nothing still queued in socket buffers is counted as moved); the first ``WARM_S`` (slow
  start, buffer autotuning) is not counted, as iperf3 users skip it with ``-O``.

Bounded: ``measure_loopback`` takes about ``budget`` seconds (2 s by default) and at most
``MAX_SAMPLES`` round trips per phase; only loopback is used. POSIX only (``os.fork``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from homeport.doctor.perf import Figures, LoopbackConfig, PerfReport, evaluate

MAX_SAMPLES = 200_000
_BLOCK = 1 << 20
_PING, _BULK = b"p", b"B"

Pair = Callable[[], tuple[socket.socket, socket.socket]]


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected TCP pair over 127.0.0.1, Nagle off on both ends."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        a = socket.create_connection(srv.getsockname())
        b, _ = srv.accept()
    for s in (a, b):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return a, b


def unix_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return a, b


def measure(pair: Pair, rtt_s: float, bulk_s: float) -> Figures:
    """Round trips for ``rtt_s`` seconds, then bulk transfer for ``bulk_s`` seconds (0: none)."""
    a, b = pair()
    pid = os.fork()
    if pid == 0:  # the peer: echo, then count; never returns
        status = 0
        try:
            a.close()
            _peer(b)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    b.close()
    try:
        rtt = _ping(a, rtt_s) if rtt_s > 0 else []
        moved, seconds = _bulk(a, bulk_s) if bulk_s > 0 else (0, 0.0)
    finally:
        a.close()
        os.waitpid(pid, 0)
    return Figures(tuple(rtt), moved, seconds)


def _peer(s: socket.socket) -> None:
    while True:
        got = s.recv(1)
        if got in (_BULK, b""):
            break
        s.sendall(got)
    buf = bytearray(_BLOCK)
    total = 0
    while n := s.recv_into(buf):
        total += n
    s.sendall(struct.pack("!Q", total))
    s.close()


def _ping(s: socket.socket, seconds: float) -> list[float]:
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    samples: list[float] = []
    send, recv = s.send, s.recv
    for _ in range(20):  # warm-up: caches, the scheduler's placement
        send(_PING)
        recv(1)
    while len(samples) < MAX_SAMPLES:
        t0 = clock()
        send(_PING)
        recv(1)
        t1 = clock()
        samples.append((t1 - t0) / 1000)
        if t1 >= deadline:
            break
    return samples


#: The first part of each bulk round is not counted: slow start and buffer autotuning.
WARM_S = 0.04


def _bulk(s: socket.socket, seconds: float) -> tuple[int, float]:
    """(bytes, seconds) moved after the warm-up, up to the peer's count of everything."""
    s.sendall(_BULK)
    data = memoryview(bytes(_BLOCK))
    clock = time.perf_counter
    start = clock()
    warm_until, deadline = start + min(WARM_S, seconds / 4), start + seconds
    warm_bytes, warm_at = 0, start
    while (now := clock()) < deadline:
        if now < warm_until:
            warm_bytes += _BLOCK
            warm_at = now
        s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    answer = b""
    while len(answer) < 8:
        chunk = s.recv(8 - len(answer))
        if not chunk:
            break
        answer += chunk
    elapsed = clock() - warm_at
    moved = struct.unpack("!Q", answer)[0] - warm_bytes if len(answer) == 8 else 0
    return max(0, int(moved)), elapsed


#: Bulk rounds per kind, alternated TCP / AF_UNIX so that both see the same load; the
#: median round counts (a shared machine's noise moved single rounds by 3x here).
ROUNDS = 3


def measure_loopback(budget: float = 2.0) -> PerfReport:
    """The self-test: TCP over 127.0.0.1 and the AF_UNIX baseline, in about ``budget`` s."""
    tcp_rtt = measure(tcp_pair, 0.15 * budget, 0)
    unix_rtt = measure(unix_pair, 0.1 * budget, 0)
    tcp_bulk: list[Figures] = []
    unix_bulk: list[Figures] = []
    for _ in range(ROUNDS):
        tcp_bulk.append(measure(tcp_pair, 0, 0.14 * budget))
        unix_bulk.append(measure(unix_pair, 0, 0.1 * budget))
    tcp = _median_round(tcp_rtt, tcp_bulk)
    unix = _median_round(unix_rtt, unix_bulk)
    return evaluate(tcp, unix, read_config())


def _median_round(rtt: Figures, rounds: list[Figures]) -> Figures:
    mid = sorted(rounds, key=lambda f: f.throughput_bps)[len(rounds) // 2]
    return Figures(rtt.rtt_us, mid.bytes_moved, mid.seconds)


# ------------------------------------------------------------------ configuration


def read_config(sys_root: Path = Path("/sys"), proc: Path = Path("/proc")) -> LoopbackConfig:
    """What can slow loopback here; each item None when it cannot be read."""
    rules, accepted_first, note, exempt = _firewall()
    return LoopbackConfig(
        mtu=lo_mtu() or _int(_read(sys_root / "class/net/lo/mtu")),
        qdisc=_qdisc(),
        fw_rules=rules,
        fw_lo_accepted_first=accepted_first,
        fw_note=note,
        # Read after the measurement: its connection is counted if conntrack's hooks run.
        conntrack_entries=_int(_read(proc / "sys/net/netfilter/nf_conntrack_count")),
        conntrack_lo_exempt=exempt,
        congestion=_read(proc / "sys/net/ipv4/tcp_congestion_control"),
        tcp_rmem_max=_last_int(_read(proc / "sys/net/ipv4/tcp_rmem")),
        tcp_wmem_max=_last_int(_read(proc / "sys/net/ipv4/tcp_wmem")),
        governor=_read(sys_root / "devices/system/cpu/cpu0/cpufreq/scaling_governor"),
    )


#: SIOCGIFMTU (include/uapi/linux/sockios.h); struct ifreq is 16 bytes of name + a union.
_SIOCGIFMTU = 0x8921


def lo_mtu() -> int | None:
    """lo's MTU in *this* network namespace (/sys shows the namespace it was mounted in)."""
    import fcntl

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("16si12x", b"lo", 0)
            answer = fcntl.ioctl(s.fileno(), _SIOCGIFMTU, req)
    except OSError:
        return None
    return int(struct.unpack_from("16si", answer)[1])


def parse_qdisc(text: str) -> str | None:
    """The root qdisc's kind from ``tc qdisc show dev lo``: ``qdisc noqueue 0: root ...``."""
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "qdisc" and "root" in words:
            return words[1] if words[1] == "noqueue" else " ".join(words[1:])
    return None


def _qdisc() -> str | None:
    try:
        done = subprocess.run(
            ["tc", "qdisc", "show", "dev", "lo"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_qdisc(done.stdout) if done.returncode == 0 else None


def _firewall() -> tuple[tuple[str, ...], bool, str | None, bool]:
    """(rules loopback packets traverse, lo accepted first in every chain, why unread,
    a notrack rule for lo exists)."""
    from homeport.doctor.firewall import describe, read_firewall

    reading = read_firewall()
    if reading.status != "ok":
        return (), False, reading.message, False
    exempt = any("notrack" in r.text and r.names_lo for r in reading.rules)
    by_chain: dict[tuple[str, str, str], list[str]] = {}
    first_accepts: dict[tuple[str, str, str], bool] = {}
    for r in reading.rules:
        if r.hook not in ("input", "output"):
            continue
        key = (r.source, r.table, r.chain)
        if key not in first_accepts:
            first_accepts[key] = r.names_lo and r.verdict == "accept"
        if r.applies_to_lo:
            by_chain.setdefault(key, []).append(describe(r))
    rules = tuple(t for texts in by_chain.values() for t in texts)
    return rules, bool(first_accepts) and all(first_accepts.values()), None, exempt


def _read(path: Path) -> str | None:
    with contextlib.suppress(OSError):
        return path.read_text().strip()
    return None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def _last_int(text: str | None) -> int | None:
    return _int(text.split()[-1]) if text else None
