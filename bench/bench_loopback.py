"""Loopback self-test benchmark: ``homeport doctor --perf`` against iperf3 and a TCP_RR
equivalent, in the same run, interleaved.

- throughput: ``homeport doctor --perf --json`` (``throughput_bits_per_second``) against
  ``iperf3 -c 127.0.0.1 -t 1 -J`` (Debian iperf3; its receiver's bits per second);
- round trip: ``rtt_median_us`` against a TCP_RR equivalent. netperf (whose TCP_RR is the
  usual figure) is not in Debian main here, so the peer is a 1-byte ping-pong against
  ``socat TCP-LISTEN:P,fork PIPE`` (socat echoes in C); the client side is timed the same
  way as doctor's (one ``perf_counter_ns`` pair around send+recv of 1 byte, TCP_NODELAY).

Each round runs both sides, order flipping every round; medians over rounds, the ratio
homeport/peer, and p99 of the round trips. ``--readme`` writes bench/README.md's section.

    .venv/bin/python bench/bench_loopback.py [--rounds 5] [--readme]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOMEPORT = str(Path(sys.executable).parent / "homeport")
README = HERE / "README.md"
SECTION = "## Loopback self-test (issue 13): `doctor --perf` vs iperf3 and a TCP_RR equivalent"
BEGIN, END = "<!-- loopback-bench:begin -->", "<!-- loopback-bench:end -->"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"peer server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)  # bounded readiness poll on a connect
    sys.exit(f"nothing listens on {port} after {limit}s")


@contextlib.contextmanager
def server(argv: list[str], port: int) -> Iterator[None]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def homeport_perf() -> dict[str, float]:
    out = subprocess.run(
        [HOMEPORT, "doctor", "--perf", "--json"], capture_output=True, text=True, check=True
    ).stdout
    doc = json.loads(out)
    return {k: float(doc[k]) for k in ("throughput_bits_per_second", "rtt_median_us", "rtt_p99_us")}


def iperf3(port: int) -> float:
    out = subprocess.run(
        ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", "1", "-J"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"])


def socat_rr(port: int, seconds: float = 0.3) -> tuple[float, float]:
    """(median, p99) µs of 1-byte round trips against socat's echo."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        clock, send, recv = time.perf_counter_ns, s.send, s.recv
        for _ in range(20):
            send(b"p")
            recv(1)
        samples: list[float] = []
        deadline = clock() + int(seconds * 1e9)
        while len(samples) < 200_000:
            t0 = clock()
            send(b"p")
            recv(1)
            t1 = clock()
            samples.append((t1 - t0) / 1000)
            if t1 >= deadline:
                break
    samples.sort()
    return statistics.median(samples), samples[int(0.99 * (len(samples) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--readme", action="store_true")
    args = ap.parse_args()
    missing = [t for t in ("iperf3", "socat") if shutil.which(t) is None]
    if missing:
        sys.exit(f"missing peers: {', '.join(missing)} (Debian packages)")
    ip, sp = free_port(), free_port()
    hp: list[dict[str, float]] = []
    ipf: list[float] = []
    rr: list[tuple[float, float]] = []
    load_start = os.getloadavg()[0]
    with (
        server(["iperf3", "-s", "-p", str(ip)], ip),
        server(["socat", f"TCP-LISTEN:{sp},fork,reuseaddr,bind=127.0.0.1", "PIPE"], sp),
    ):
        for i in range(args.rounds):
            if i % 2:
                ipf.append(iperf3(ip))
                rr.append(socat_rr(sp))
                hp.append(homeport_perf())
            else:
                hp.append(homeport_perf())
                ipf.append(iperf3(ip))
                rr.append(socat_rr(sp))
    out = report(args.rounds, hp, ipf, rr, load_start)
    print(out)
    if args.readme:
        write_readme(out)


def report(
    rounds: int,
    hp: list[dict[str, float]],
    ipf: list[float],
    rr: list[tuple[float, float]],
    load_start: float,
) -> str:
    tput = statistics.median(h["throughput_bits_per_second"] for h in hp)
    rtt = statistics.median(h["rtt_median_us"] for h in hp)
    p99 = statistics.median(h["rtt_p99_us"] for h in hp)
    i_tput = statistics.median(ipf)
    r_rtt = statistics.median(m for m, _ in rr)
    r_p99 = statistics.median(p for _, p in rr)
    return "\n".join(
        [
            f"date {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; nproc {os.cpu_count()};"
            f" kernel {os.uname().release}; rounds {rounds}, interleaved; medians over rounds;"
            f" load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end",
            "",
            "| figure | homeport doctor --perf | peer | peer figure | ratio |",
            "|---|---|---|---|---|",
            f"| throughput | {tput / 1e9:.2f} Gbit/s | iperf3 -c 127.0.0.1 -t 1 |"
            f" {i_tput / 1e9:.2f} Gbit/s | {tput / i_tput:.2f} |",
            f"| round trip, median | {rtt:.1f} µs | 1-byte ping-pong vs socat PIPE echo |"
            f" {r_rtt:.1f} µs | {rtt / r_rtt:.2f} |",
            f"| round trip, p99 | {p99:.1f} µs | same | {r_p99:.1f} µs | {p99 / r_p99:.2f} |",
            "",
            "per round, homeport Gbit/s: "
            + ", ".join(f"{h['throughput_bits_per_second'] / 1e9:.1f}" for h in hp)
            + "; iperf3 Gbit/s: "
            + ", ".join(f"{x / 1e9:.1f}" for x in ipf),
        ]
    )


def write_readme(body: str) -> None:
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{body}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        intro = (
            "`.venv/bin/python bench/bench_loopback.py --readme`. netperf is not in Debian"
            " main here: the round-trip peer is a TCP_RR equivalent (1-byte ping-pong against"
            " `socat ... PIPE`, timed like doctor's own). Target: within 10% of both."
        )
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{intro}\n\n" + block + "\n"
    README.write_text(text)


if __name__ == "__main__":
    main()
