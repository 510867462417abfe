"""The outside-in probe: connect to this host's own addresses from a throwaway network
namespace, so that packets take the firewall's input path like a neighbour's would.

Layout (addresses from the RFC 2544 benchmarking range 198.18.0.0/15, and 2001:2::/48
from RFC 5180 for IPv6, so they never clash with a real network)::

    host  --- vethH 198.18.N.1/30 ==== vethN 198.18.N.2/30 ---  netns hpaudit-PID-K
                                                               default route via .1

The namespace is removed in a ``finally`` (which also runs on Ctrl-C; SIGTERM is turned
into the same path while the namespace exists); deleting it deletes both veth ends. A run
killed with SIGKILL leaves ``hpaudit-PID-K`` behind: the next run removes namespaces whose
PID is gone. Connects run in a child ``ip netns exec ... python -m
homeport.audit._netns_probe`` so that no socket of ours ever changes namespace.

Limits: packets arrive on the veth, so rules that match an input *interface* name
(``iifname "eth0"``) are not exercised; the report says so.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from homeport.errors import EnvironmentProblem

log = logging.getLogger("homeport.audit.outside")

Reach = Literal["reachable", "refused", "timeout", "error"]
PREFIX = "hpaudit-"
_BENCH4 = ipaddress.ip_network("198.18.0.0/15")
_counter = itertools.count()


@dataclass(frozen=True, slots=True)
class Attempt:
    address: str
    port: int
    reach: Reach


@dataclass(frozen=True, slots=True)
class OutsideReport:
    verified: bool
    #: Why the probe did not run (no privilege, no ``ip``), when not verified.
    reason: str | None = None
    addresses: tuple[str, ...] = ()
    attempts: tuple[Attempt, ...] = ()
    source: str | None = None  # "198.18.N.2 in netns hpaudit-…"

    def reach(self, address: str, port: int) -> Reach | None:
        for a in self.attempts:
            if a.address == address and a.port == port:
                return a.reach
        return None


# --- privilege and addresses -------------------------------------------------------------


def parse_cap_eff(status_text: str) -> int:
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def missing_privilege() -> str | None:
    """Why we cannot make a namespace here, or None when we can."""
    if shutil.which("ip") is None:
        return "the `ip` tool (iproute2) is not installed"
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux (this is {sys.platform})"
    try:
        with open("/proc/self/status") as f:
            caps = parse_cap_eff(f.read())
    except OSError:
        caps = 0
    # CAP_NET_ADMIN (12) for links and addresses, CAP_SYS_ADMIN (21) for `ip netns add`
    # (it bind-mounts /run/netns/NAME): include/uapi/linux/capability.h
    if not (caps >> 12) & 1 or not (caps >> 21) & 1:
        return "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to build a network namespace"
    return None


def parse_ip_addr_json(text: str) -> list[tuple[str, int, str]]:
    """``ip -j addr show`` -> (address, prefixlen, ifname) for every address."""
    out = []
    for link in json.loads(text or "[]"):
        for a in link.get("addr_info", []):
            out.append((a["local"], int(a["prefixlen"]), link.get("ifname", "")))
    return out


def own_targets(addrs: Sequence[tuple[str, int, str]]) -> list[str]:
    """The addresses a neighbour could aim at: not loopback, not link-local, not ours."""
    out = []
    for addr, _, ifname in addrs:
        a = ipaddress.ip_address(addr)
        if a.is_loopback or a.is_link_local or a.is_multicast or ifname.startswith("hpa"):
            continue
        out.append(addr)
    return out


def pick_subnet(addrs: Sequence[tuple[str, int, str]], rng: random.Random) -> int:
    """A free /30 index inside 198.18.0.0/15, clear of every network already configured."""
    taken = [ipaddress.ip_interface(f"{a}/{p}").network for a, p, _ in addrs if ":" not in a]
    for _ in range(200):
        n = rng.randrange(1, 2**15 - 1)
        net = ipaddress.ip_network(f"{_BENCH4.network_address + 4 * n}/30")
        if not any(net.overlaps(t) for t in taken):
            return n
    raise EnvironmentProblem("no free /30 in 198.18.0.0/15 for the outside-in probe")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=check)


def _batch(opts: list[str], lines: list[str], check: bool = True) -> None:
    argv = ["ip", *opts, *([] if check else ["-force"]), "-batch", "-"]
    subprocess.run(
        argv, input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=10, check=check
    )


def host_addresses() -> list[tuple[str, int, str]]:
    return parse_ip_addr_json(_ip("-j", "addr", "show").stdout)


# --- the namespace -----------------------------------------------------------------------


def stale_namespaces(names: Sequence[str], pid_alive: Any = None) -> list[str]:
    """Our namespaces whose creating process is gone (``hpaudit-PID-K``)."""
    alive = pid_alive or (lambda pid: os.path.exists(f"/proc/{pid}"))
    out = []
    for name in names:
        parts = name.split()[0].split("-") if name.strip() else []
        ours = len(parts) == 3 and parts[0] + "-" == PREFIX and parts[1].isdigit()
        if ours and not alive(int(parts[1])):
            out.append(name.split()[0])
    return out


def sweep_stale() -> list[str]:
    names = _ip("netns", "list", check=False).stdout.splitlines()
    gone = stale_namespaces(names)
    for name in gone:
        _ip("netns", "del", name, check=False)
        log.info("removed namespace %s left by a killed audit", name)
    return gone


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    host_if: str
    source4: str
    source6: str


@contextlib.contextmanager
def namespace(rng: random.Random | None = None) -> Iterator[Namespace]:
    """Create the namespace and veth pair; always remove them, also on Ctrl-C/SIGTERM."""
    sweep_stale()
    k = next(_counter)
    pid = os.getpid()
    name, host_if, ns_if = f"{PREFIX}{pid}-{k}", f"hpa{pid}{k}h", f"hpa{pid}{k}n"
    n = pick_subnet(host_addresses(), rng or random.Random())
    base = _BENCH4.network_address + 4 * n
    h4, s4 = f"{base + 1}", f"{base + 2}"
    h6, s6 = f"2001:2:0:{n:x}::1", f"2001:2:0:{n:x}::2"
    with sigterm_as_interrupt():
        try:
            _ip("netns", "add", name)
            # Two `ip -batch` runs instead of a dozen `ip` processes: each spawn costs.
            _batch(
                [],
                [
                    f"link add {host_if} type veth peer name {ns_if} netns {name}",
                    f"addr add {h4}/30 dev {host_if}",
                    f"link set {host_if} up",
                ],
            )
            _batch(
                ["-n", name],
                [
                    f"addr add {s4}/30 dev {ns_if}",
                    f"link set {ns_if} up",
                    "link set lo up",
                    f"route add default via {h4}",
                ],
            )
            # IPv6 is best effort (it may be disabled): -force goes on past a failed line.
            _batch(["-6"], [f"addr add {h6}/64 dev {host_if} nodad"], check=False)
            _batch(
                ["-6", "-n", name],
                [f"addr add {s6}/64 dev {ns_if} nodad", f"route add default via {h6}"],
                check=False,
            )
            yield Namespace(name, host_if, s4, s6)
        except subprocess.CalledProcessError as exc:
            raise EnvironmentProblem(
                f"could not build the probe namespace: {' '.join(exc.cmd)}: "
                f"{(exc.stderr or '').strip()}"
            ) from exc
        finally:
            _ip("netns", "del", name, check=False)
            _ip("link", "del", host_if, check=False)  # gone with the namespace; be sure


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the namespace exists, SIGTERM unwinds through ``finally`` like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# --- the probe ---------------------------------------------------------------------------


def run_probe(
    ports: Sequence[int],
    addresses: Sequence[str] | None = None,
    timeout: float = 1.0,
    cancel: threading.Event | None = None,
) -> OutsideReport:
    """Try every TCP ``port`` on every address from a fresh namespace.

    ``cancel`` (set by the caller on Ctrl-C) stops the wait early; the namespace is
    removed either way.
    """
    reason = missing_privilege()
    if reason is not None:
        return OutsideReport(False, reason)
    targets = list(addresses) if addresses else own_targets(host_addresses())
    if not targets or not ports:
        return OutsideReport(True, None, tuple(targets), ())
    with namespace() as ns:
        pairs = [f"{a}|{p}" for a in targets for p in sorted(set(ports))]
        argv = [
            "ip",
            "netns",
            "exec",
            ns.name,
            sys.executable,
            "-m",
            "homeport.audit._netns_probe",
            str(timeout),
            *pairs,
        ]
        out = _run_child(argv, timeout + 20, cancel)
        if out is None:
            return OutsideReport(False, "interrupted")
        attempts = tuple(parse_attempts(out))
    return OutsideReport(True, None, tuple(targets), attempts, f"{ns.source4} in netns {ns.name}")


def _run_child(argv: list[str], limit: float, cancel: threading.Event | None) -> str | None:
    """Run the in-namespace prober; its stdout, or None when cancelled."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env()
    )
    deadline = time.monotonic() + limit
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                if (cancel is not None and cancel.is_set()) or time.monotonic() > deadline:
                    return None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    if proc.returncode != 0:
        raise EnvironmentProblem(f"outside-in probe failed: {err.strip()[-300:]}")
    return out


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def parse_attempts(text: str) -> list[Attempt]:
    out = []
    for line in text.splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(Attempt(d["address"], int(d["port"]), d["reach"]))
    return out
