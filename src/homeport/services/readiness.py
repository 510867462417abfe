"""Readiness probes for a project's services: tcp, http, exec, log (asyncio, in the daemon).

A service is ready only when its probe passed. TCP and HTTP reuse the waits of ``homeport
wait`` (``ports.probe``), which reject a TCP self-connect (DESIGN.md, "Waiting must not fool
itself") and try 127.0.0.1 and ::1; each attempt runs in a thread.

Attempts come every 10 ms for the first ``FAST_FOR`` seconds, then back off 1.6x per attempt
up to ``interval``: a dev server is usually ready within a second or two, and a dependent
should start within milliseconds of it, not a whole interval later (bench/bench_project.py
measured ~170 ms of lateness per chain level with a 10 ms x 1.6 back-off from the start).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

from homeport.project.schema import ReadySpec

FIRST_DELAY = 0.01
GROWTH = 1.6
FAST_FOR = 3.0


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    reason: str
    address: str | None = None  # the loopback address that answered (tcp/http)


def pause(spec: ReadySpec, elapsed: float, slow_attempts: int) -> float:
    """Seconds before the next attempt."""
    if elapsed < FAST_FOR:
        return min(spec.interval, FIRST_DELAY)
    return float(min(spec.interval, FIRST_DELAY * GROWTH**slow_attempts))


def attempt(
    spec: ReadySpec, port: int | None, cwd: str, env: Mapping[str, str], host: str | None = None
) -> Outcome:  # blocking: run in a thread
    """One probe; ``host`` is the service's own address (``address`` in the file), where it
    alone is probed: 127.0.0.1 answering would be another copy of the same program."""
    if spec.kind == "tcp":
        import socket

        from homeport.services.runner import LOCAL_ADDRS, answering

        p = spec.port or port
        addrs = ((host, socket.AF_INET),) if host else LOCAL_ADDRS
        addr = answering(p, addrs) if p else None
        return Outcome(addr is not None, f"port {p} accepts" if addr else f"nothing accepts on {p}",
                       addr)  # fmt: skip
    if spec.kind == "http":
        return _http(spec, port, host)
    if spec.kind == "exec":
        return _exec(spec, cwd, env)
    return Outcome(False, f"no probe for {spec.kind}")


def _http(spec: ReadySpec, port: int | None, host: str | None = None) -> Outcome:
    from homeport.ports.probe import probe_http
    from homeport.ports.wait import HttpCheck, WaitTarget

    name = host or "localhost"
    url = f"http://{name}:{port}{spec.path}"
    target = WaitTarget(url, "http", host=name, port=port, url=url, path=spec.path)
    got = probe_http(target, spec.timeout, HttpCheck(spec.status, spec.contains))
    address = (got.address or "").rsplit(":", 1)[0].strip("[]") or None
    return Outcome(got.ok, got.reason, address)


def _exec(spec: ReadySpec, cwd: str, env: Mapping[str, str]) -> Outcome:
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", spec.command or "false"],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            process_group=0,  # on a timeout the whole group goes, not only the shell
        )
    except OSError as exc:
        return Outcome(False, f"exec probe could not run: {exc.strerror}")
    try:
        code = proc.wait(spec.timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return Outcome(False, f"exec probe took longer than {spec.timeout:g}s")
    return Outcome(code == 0, f"exec probe exited {code}")


class LogWatch:
    """Lines of output matched against a ``log`` probe's pattern (fed by the tailer)."""

    def __init__(self, pattern: str) -> None:
        self._re = re.compile(pattern)
        self.matched = asyncio.Event()

    def feed(self, line: str) -> None:
        if not self.matched.is_set() and self._re.search(line):
            self.matched.set()


async def wait_ready(
    spec: ReadySpec,
    port: int | None,
    cwd: str,
    env: Mapping[str, str],
    log_watch: LogWatch | None,
    host: str | None = None,
) -> Outcome:
    """Probe until ready, the deadline, or ``retries`` failed attempts.

    ``retries`` counts attempts at the ``interval`` pace (what a user writing interval = 1,
    retries = 3 means: about 4 s), so the quicker attempts of the first seconds do not use
    them up: the probe gives up once ``interval * (retries + 1)`` seconds have passed."""
    if spec.kind == "log":
        assert log_watch is not None
        try:
            await asyncio.wait_for(log_watch.matched.wait(), spec.deadline)
        except TimeoutError:
            return Outcome(False, f"no output line matched {spec.pattern!r} in {spec.deadline:g}s")
        return Outcome(True, "log line matched")
    start = time.monotonic()
    slow = 0
    while True:
        # In a thread, the TCP probe too: uvloop's sock_connect on a socket we then close
        # left a stale registration that swallowed a pidfd opened later on the same number.
        got = await asyncio.to_thread(attempt, spec, port, cwd, env, host)
        if got.ok:
            return got
        elapsed = time.monotonic() - start
        if spec.retries is not None and elapsed >= spec.interval * (spec.retries + 1):
            return Outcome(False, f"{got.reason} after {spec.retries} retries")
        if elapsed >= spec.deadline:
            return Outcome(False, f"{got.reason} after {spec.deadline:g}s")
        slow += elapsed >= FAST_FOR
        await asyncio.sleep(pause(spec, elapsed, slow))  # a poll by design: no event to await


def child_env(base: Mapping[str, str], files: tuple[str, ...], own: tuple[tuple[str, str], ...]
              ) -> dict[str, str]:  # fmt: skip
    """The environment a service gets: the caller's, then its env files in order, then its
    ``env`` table (and PORT/HOST), each later one winning."""
    from dotenv import dotenv_values

    env = dict(base)
    for f in files:
        if not os.path.isfile(f):
            raise FileNotFoundError(f"env_file {f} not found")
        env.update({k: v for k, v in dotenv_values(f).items() if v is not None})
    env.update(own)
    return env
