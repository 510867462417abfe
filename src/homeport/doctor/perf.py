"""Pure: the loopback self-test's verdict — measured figures + loopback configuration ->
what is slow, and what on this machine makes it so.

``perfprobe`` measures (TCP round trip and throughput over 127.0.0.1, and the same over
an AF_UNIX socket pair as this kernel's and CPU's baseline: the same two processes, the
same copies and wake-ups, but no TCP/IP stack, no netfilter, no qdisc, no MTU) and reads
the configuration. ``evaluate`` compares and names the suspects:

- nftables / iptables rules evaluated for every loopback packet (no early ``iif lo accept``),
  and conntrack tracking every loopback connection;
- an MTU on ``lo`` other than 65536 (smaller segments: more per-packet work);
- a qdisc on ``lo`` other than ``noqueue`` (netem delay/loss, tbf rate limits);
- TCP buffer limits below what loopback needs, an unusual congestion control, and a CPU
  frequency governor that parks the cores (``powersave``).

The expected ratios come from this repository's measurements (bench/README.md, "doctor
--perf"): in a fresh network namespace (no rule, no conntrack, MTU 65536, noqueue) loopback
TCP moved 0.26-0.81x the bytes of an AF_UNIX pair and answered a round trip in 1.4-1.5x its
time on a loaded 2-core host; below 0.2x or above 2.5x, loopback itself is slow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: Loopback TCP vs AF_UNIX on a healthy host: at least this fraction of the throughput,
#: at most this multiple of the round trip.
MIN_THROUGHPUT_RATIO = 0.2
MAX_RTT_RATIO = 2.5
LO_MTU = 65536
#: Largest tcp_rmem/tcp_wmem (bytes) below which one loopback stream is window-limited.
MIN_TCP_BUFFER = 4 * 1024 * 1024
USUAL_CONGESTION = frozenset({"cubic", "bbr", "reno", "bbr2", "dctcp"})


@dataclass(frozen=True, slots=True)
class Figures:
    """One measurement: round trips (µs, every sample) and bytes moved in seconds."""

    rtt_us: tuple[float, ...]
    bytes_moved: int
    seconds: float

    @property
    def throughput_bps(self) -> float:
        return 8 * self.bytes_moved / self.seconds if self.seconds > 0 else 0.0

    @property
    def rtt_median_us(self) -> float:
        return percentile(self.rtt_us, 50)


@dataclass(frozen=True, slots=True)
class LoopbackConfig:
    """What can slow loopback, as read from this machine (None: could not be read)."""

    mtu: int | None = None
    qdisc: str | None = None
    #: Firewall rules on the local hooks that loopback packets traverse, as text.
    fw_rules: tuple[str, ...] = ()
    #: Whether an early rule accepts lo (then later rules cost little).
    fw_lo_accepted_first: bool = False
    fw_note: str | None = None
    #: nf_conntrack loaded: entries now, and whether loopback is exempt (a notrack rule).
    conntrack_entries: int | None = None
    conntrack_lo_exempt: bool = False
    congestion: str | None = None
    tcp_rmem_max: int | None = None
    tcp_wmem_max: int | None = None
    governor: str | None = None


@dataclass(frozen=True, slots=True)
class Slowdown:
    id: str
    summary: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "summary": self.summary, "fix": self.fix}


@dataclass(frozen=True, slots=True)
class PerfReport:
    tcp: Figures
    unix: Figures
    config: LoopbackConfig
    slowdowns: tuple[Slowdown, ...] = ()
    #: What the measured figures say by themselves.
    verdict: Literal["ok", "slow"] = "ok"
    notes: tuple[str, ...] = field(default=())

    @property
    def throughput_ratio(self) -> float:
        u = self.unix.throughput_bps
        return self.tcp.throughput_bps / u if u else 0.0

    @property
    def rtt_ratio(self) -> float:
        u = self.unix.rtt_median_us
        return self.tcp.rtt_median_us / u if u else 0.0

    def to_json(self) -> dict[str, Any]:
        t, u, c = self.tcp, self.unix, self.config
        return {
            "throughput_bits_per_second": round(t.throughput_bps),
            "rtt_median_us": round(t.rtt_median_us, 2),
            "rtt_p99_us": round(percentile(t.rtt_us, 99), 2),
            "rtt_samples": len(t.rtt_us),
            "baseline": {
                "method": "AF_UNIX stream socket pair, same processes and method",
                "throughput_bits_per_second": round(u.throughput_bps),
                "rtt_median_us": round(u.rtt_median_us, 2),
            },
            "ratios": {
                "throughput_tcp_over_unix": round(self.throughput_ratio, 3),
                "rtt_tcp_over_unix": round(self.rtt_ratio, 3),
                "expected_throughput_at_least": MIN_THROUGHPUT_RATIO,
                "expected_rtt_at_most": MAX_RTT_RATIO,
            },
            "verdict": self.verdict,
            "slowdowns": [s.to_json() for s in self.slowdowns],
            "config": {
                "lo_mtu": c.mtu,
                "lo_qdisc": c.qdisc,
                "firewall_rules_on_lo": list(c.fw_rules),
                "firewall_note": c.fw_note,
                "conntrack_entries": c.conntrack_entries,
                "conntrack_lo_exempt": c.conntrack_lo_exempt,
                "tcp_congestion_control": c.congestion,
                "tcp_rmem_max": c.tcp_rmem_max,
                "tcp_wmem_max": c.tcp_wmem_max,
                "cpu_governor": c.governor,
            },
            "notes": list(self.notes),
        }


def percentile(values: tuple[float, ...], p: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def evaluate(tcp: Figures, unix: Figures, config: LoopbackConfig) -> PerfReport:
    """The report: the figures against the baseline, and every configured suspect."""
    base = PerfReport(tcp, unix, config)
    slow = (
        base.throughput_ratio < MIN_THROUGHPUT_RATIO or base.rtt_ratio > MAX_RTT_RATIO
    ) and unix.bytes_moved > 0
    return PerfReport(tcp, unix, config, suspects(config), "slow" if slow else "ok", _notes(base))


def _notes(r: PerfReport) -> tuple[str, ...]:
    return (
        f"throughput {r.throughput_ratio:.2f}x the AF_UNIX baseline (healthy: >="
        f" {MIN_THROUGHPUT_RATIO}x); round trip {r.rtt_ratio:.2f}x (healthy: <= {MAX_RTT_RATIO}x)",
    )


def suspects(c: LoopbackConfig) -> tuple[Slowdown, ...]:
    """Everything configured here that costs loopback time, whether or not it shows now."""
    out: list[Slowdown] = []
    if c.fw_rules and not c.fw_lo_accepted_first:
        out.append(
            Slowdown(
                "firewall.rules",
                f"{len(c.fw_rules)} firewall rule(s) are evaluated for every loopback packet"
                f" (first: {c.fw_rules[0]})",
                "accept loopback first: `nft insert rule inet filter input iif lo accept`"
                " (and `oif lo accept` on output), or `iptables -I INPUT 1 -i lo -j ACCEPT`",
            )
        )
    # nf_conntrack only tracks once a rule or NAT asks for it (nf_ct_netns_get): entries
    # after the self-test's own connection are the sign that loopback is tracked.
    if c.conntrack_entries and not c.conntrack_lo_exempt:
        out.append(
            Slowdown(
                "conntrack.lo",
                f"conntrack tracks every loopback connection ({c.conntrack_entries} entries now)",
                "exempt lo: `nft add table inet raw; nft add chain inet raw pre '{ type filter"
                " hook prerouting priority raw; }'; nft add rule inet raw pre iif lo notrack`"
                " (and the same on output with `oif lo`)",
            )
        )
    if c.mtu is not None and c.mtu != LO_MTU:
        out.append(
            Slowdown(
                "lo.mtu",
                f"lo's MTU is {c.mtu}, not {LO_MTU}: more, smaller segments per byte",
                f"`sudo ip link set dev lo mtu {LO_MTU}`",
            )
        )
    if c.qdisc is not None and c.qdisc not in ("noqueue", ""):
        out.append(
            Slowdown(
                "lo.qdisc",
                f"a queueing discipline is attached to lo: {c.qdisc} (the default is noqueue;"
                " netem adds delay or loss, tbf limits the rate)",
                "`sudo tc qdisc del dev lo root`",
            )
        )
    out += _sysctl_suspects(c)
    return tuple(out)


def _sysctl_suspects(c: LoopbackConfig) -> list[Slowdown]:
    out: list[Slowdown] = []
    small = [
        f"{name} {value}"
        for name, value in (("tcp_rmem", c.tcp_rmem_max), ("tcp_wmem", c.tcp_wmem_max))
        if value is not None and value < MIN_TCP_BUFFER
    ]
    if small:
        out.append(
            Slowdown(
                "tcp.buffers",
                f"TCP buffer limits are small for loopback: max {', '.join(small)} bytes",
                "`sudo sysctl -w net.ipv4.tcp_rmem='4096 131072 6291456'"
                " net.ipv4.tcp_wmem='4096 16384 4194304'` (the kernel defaults)",
            )
        )
    if c.congestion is not None and c.congestion not in USUAL_CONGESTION:
        out.append(
            Slowdown(
                "tcp.congestion",
                f"TCP congestion control is {c.congestion!r}, not cubic or bbr",
                "`sudo sysctl -w net.ipv4.tcp_congestion_control=cubic`",
            )
        )
    if c.governor == "powersave":
        out.append(
            Slowdown(
                "cpu.governor",
                "the CPU frequency governor is powersave: wake-ups and copies run slow",
                "`sudo cpupower frequency-set -g performance` (or schedutil)",
            )
        )
    return out
