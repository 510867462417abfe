"""Check this machine for local development, and say how to fix what is off.

Checks, in order (ids as in --json):
  loopback.interface    lo exists and is up
  loopback.ipv4         127.0.0.1 on lo
  loopback.ipv6         ::1 on lo, IPv6 not disabled
  localhost.hosts       /etc/hosts maps localhost to loopback (and to which families)
  localhost.resolution  the order getaddrinfo("localhost") returns, and which live loopback
                        listeners that order cannot reach by name
  localhost.subdomains  whether *.localhost resolves outside browsers here
  ports.ephemeral       the kernel's source-port range, and dev ports that fall inside it
  ports.unprivileged    net.ipv4.ip_unprivileged_port_start, and whether this user may bind below
  firewall.lo           nftables / iptables rules that can drop or reject loopback traffic
                        (read-only: `nft -j list ruleset`, else `iptables-save`)
  tcp.time_wait         TIME-WAIT sockets, and the destination closest to running out of ports
  homeport.port         whether homeport's home port 62893 is free
  tls.ca                the local HTTPS CA: usable, key private (0600), root not near its end
  tls.leaves            cached leaf certificates expired or within 10 days of it
  tls.trust             each trust store (system, NSS databases, children's bundle), checked
                        by verifying a leaf as `homeport trust --status` does

Each check is ok, warn, fail, or skip (could not be verified here, e.g. no permission to
read the firewall), with a fix where there is one.

--perf runs the loopback self-test instead (~2 s, loopback only): TCP round trip (1-byte
ping-pong, like netperf TCP_RR) and throughput between two processes over 127.0.0.1,
against the same over an AF_UNIX socket pair (this kernel's and CPU's baseline without the
TCP/IP stack), and names what slows loopback here: nftables/iptables rules or conntrack on
lo, an MTU other than 65536, a qdisc on lo, small TCP buffers, an unusual congestion
control, the powersave CPU governor.
--perf --json prints {"throughput_bits_per_second", "rtt_median_us", "rtt_p99_us",
  "rtt_samples", "baseline": {...}, "ratios": {...}, "verdict": "ok"|"slow",
  "slowdowns": [{"id", "summary", "fix"}], "config": {...}, "notes": [str]}

examples:
  homeport doctor
  homeport doctor --perf
  homeport doctor --only localhost.resolution --only firewall.lo
  homeport doctor --json | jq '.checks[] | select(.status != "ok")'

exit status: 0 when no check fails (warnings allowed), 1 when any check fails.

--json prints {"status": "ok"|"skip"|"warn"|"fail" (the worst),
               "counts": {"ok": n, "skip": n, "warn": n, "fail": n},
               "checks": [{"id", "title", "status", "summary", "detail": [str],
                           "fix": str|null}]}
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from homeport.cli import render
from homeport.cli.env import Env

if TYPE_CHECKING:
    from homeport.doctor import Report

HELP = "check loopback, localhost, ports, firewall and HTTPS trust for local development"

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--only",
        metavar="ID",
        action="append",
        default=[],
        help="run only this check (repeatable; see the list above)",
    )
    p.add_argument(
        "--perf",
        action="store_true",
        help="the loopback self-test instead: TCP round trip and throughput (~2 s), and"
        " what slows loopback here",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.doctor import DoctorFacts, Report, evaluate, run_checks
    from homeport.errors import UsageError

    if getattr(args, "perf", False):
        if args.only:
            raise UsageError("--perf runs the loopback self-test; --only selects checks")
        return run_perf(args, env)
    if args.only:  # check the ids before reading the machine: the checks are pure
        ids = {c.id for c in evaluate(DoctorFacts()).checks}
        unknown = [i for i in args.only if i not in ids]
        if unknown:
            raise UsageError(
                f"unknown check {', '.join(unknown)} (accepted: {', '.join(sorted(ids))})"
            )
    report = run_checks()
    if args.only:
        report = Report(tuple(c for c in report.checks if c.id in args.only))
    if args.json:
        render.dump_json(env, report.to_json())
    else:
        env.out(render_text(env, report))
    return 1 if report.status == "fail" else 0


def run_perf(args: argparse.Namespace, env: Env) -> int:
    import os

    from homeport.errors import UnsupportedPlatform

    if not hasattr(os, "fork"):
        raise UnsupportedPlatform("doctor --perf needs os.fork (POSIX)")
    from homeport.doctor.perfprobe import measure_loopback

    report = measure_loopback()
    if args.json:
        render.dump_json(env, report.to_json())
        return 0
    j = report.to_json()
    base = j["baseline"]
    lines = [
        render.paint(env, "loopback TCP (127.0.0.1)", "bold"),
        f"  throughput  {_gbit(j['throughput_bits_per_second'])}"
        f"   (AF_UNIX baseline {_gbit(base['throughput_bits_per_second'])})",
        f"  round trip  median {j['rtt_median_us']:.1f} µs, p99 {j['rtt_p99_us']:.1f} µs"
        f"   (AF_UNIX baseline {base['rtt_median_us']:.1f} µs; {j['rtt_samples']} samples)",
        *(f"  {n}" for n in report.notes),
        "",
        render.paint(env, "verdict", "bold")
        + "  "
        + render.paint(env, report.verdict, "green" if report.verdict == "ok" else "yellow"),
    ]
    if report.slowdowns:
        lines += ["", render.paint(env, "what slows loopback here", "bold")]
        for s in report.slowdowns:
            lines += [f"  {s.summary}", f"    fix: {s.fix}"]
    else:
        lines.append("  nothing configured here slows loopback (firewall, conntrack, MTU,"
                     " qdisc, TCP sysctls, CPU governor)")  # fmt: skip
    env.out("\n".join(lines))
    return 0


def _gbit(bps: float) -> str:
    return f"{bps / 1e9:.2f} Gbit/s"


def render_text(env: Env, report: Report) -> str:
    width = max((len(c.id) for c in report.checks), default=0)
    lines: list[str] = []
    for c in report.checks:
        status = render.paint(env, c.status.ljust(4), _STYLE[c.status])
        lines.append(f"{status}  {c.id.ljust(width)}  {c.summary}")
        if c.status != "ok":
            lines.extend(f"      {' ' * width}  {d}" for d in c.detail)
        if c.fix and c.status in ("warn", "fail", "skip"):
            lines.append(f"      {' ' * width}  fix: {c.fix}")
    counts = report.counts()
    lines.append("")
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(lines)
