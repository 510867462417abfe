"""What ``homeport mcp`` costs an agent: server start to initialized, and one tool call's
round trip (``listeners`` with 200 listeners held open), beside the CLI's own time for the
same query (``homeport ls --json``), interleaved in one run.

    .venv/bin/python bench/bench_mcp.py [--rounds 5] [--calls 20] [--listeners 200]

start:     spawn ``homeport mcp``, write an ``initialize`` request on its stdin, read the
           answer (the legacy handshake, raw JSON-RPC: no client library in the timing);
           and the same through the official SDK's ``Client`` (its ``auto`` mode probes
           ``server/discover``), process spawn included in both.
call:      ``tools/call listeners {}`` through the SDK client over stdio, answer parsed and
           checked against the tool's output schema by the client, as an agent host gets it.
peer:      ``homeport ls --json`` as a process (what an agent without MCP runs), and the
           library's ``listeners()`` in-process (the floor: the query without any transport).

Targets (issue 14): call median <= 50 ms, start to initialized <= 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fixture_sockets import socket_fixture

HOMEPORT = str(Path(sys.executable).with_name("homeport"))
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}


def env_for(home: str) -> dict[str, str]:
    return {**os.environ, "HOME": home, "XDG_STATE_HOME": f"{home}/state", "HOMEPORT_PORT": "1"}


def start_raw(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [HOMEPORT, "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write((json.dumps(INIT) + "\n").encode())
    proc.stdin.flush()
    line = proc.stdout.readline()
    took = time.perf_counter() - t0
    assert b'"serverInfo"' in line, line[:200]
    proc.stdin.close()
    proc.wait(10)
    return took


async def start_sdk(env: dict[str, str]) -> float:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(command=HOMEPORT, args=["mcp"], env=env)
    t0 = time.perf_counter()
    async with Client(params):
        took = time.perf_counter() - t0
    return took


def cli_ls(env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run([HOMEPORT, "ls", "--json"], env=env, capture_output=True, check=True)
    took = time.perf_counter() - t0
    assert out.stdout.startswith(b'{"listeners"')
    return took


def library_ls() -> float:
    from homeport.inventory import listeners

    t0 = time.perf_counter()
    listeners()
    return time.perf_counter() - t0


async def calls(env: dict[str, str], n: int, expect: int) -> tuple[list[float], list[float]]:
    """n ``listeners`` calls through one session, each followed by a CLI run (interleaved)."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(command=HOMEPORT, args=["mcp"], env=env)
    mcp_t: list[float] = []
    cli_t: list[float] = []
    async with Client(params) as c:
        await c.list_tools()  # the client validates answers against the listed schemas
        await c.call_tool("listeners", {})  # warm: imports done once per session
        for _ in range(n):
            t0 = time.perf_counter()
            r = await c.call_tool("listeners", {})
            mcp_t.append(time.perf_counter() - t0)
            assert not r.is_error
            assert r.structured_content is not None
            assert len(r.structured_content["listeners"]) >= expect
            cli_t.append(await asyncio.to_thread(cli_ls, env))
    return mcp_t, cli_t


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--listeners", type=int, default=200)
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="homeport-bench-mcp-")
    env = env_for(home)
    print(
        f"# {platform.node()} {platform.machine()} {os.cpu_count()} cpus,"
        f" python {platform.python_version()}"
    )
    print(f"# load before: {os.getloadavg()}")
    with socket_fixture(listeners=args.listeners, connections=100, procs=2) as fx:
        raw: list[float] = []
        sdk: list[float] = []
        call_t: list[float] = []
        cli_t: list[float] = []
        lib_t: list[float] = []
        start_raw(env)  # untimed: the first start after a while reads the SDK from disk
        for _ in range(args.rounds):
            raw.append(start_raw(env))
            sdk.append(asyncio.run(start_sdk(env)))
            m, c = asyncio.run(calls(env, args.calls, args.listeners))
            call_t += m
            cli_t += c
            lib_t += [library_ls() for _ in range(5)]
        assert not fx.dead(), fx.dead()
    print(f"# load after: {os.getloadavg()}")
    rows = [
        ("start → initialized (raw initialize)", raw),
        ("start → connected (SDK Client, auto)", sdk),
        ("tools/call listeners (SDK, stdio)", call_t),
        ("homeport ls --json (CLI process)", cli_t),
        ("listeners() in-process (library)", lib_t),
    ]
    print(f"{'what':40} {'n':>4} {'median ms':>10} {'p90 ms':>8} {'p99 ms':>8}")
    for name, xs in rows:
        med = statistics.median(xs)
        print(f"{name:40} {len(xs):4d} {ms(med):>10} {ms(pct(xs, 0.9)):>8} {ms(pct(xs, 0.99)):>8}")
    ratio = statistics.median(call_t) / statistics.median(cli_t)
    print(f"MCP call / CLI process, medians: {ratio:.2f}")


if __name__ == "__main__":
    main()
