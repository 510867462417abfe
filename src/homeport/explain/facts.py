"""The live facts an explanation rests on, and the one edge that gathers them.

``Facts`` is a plain record, so ``diagnose`` stays pure and tests build facts by hand.
``gather`` reads this machine now: the inventory for the port (listeners, TIME-WAIT),
``getaddrinfo`` for the name and for ``localhost``, the kernel's port ranges, whether the
address can be bound, and — only for refusals and timeouts — the firewall's rules on lo.
For the connection-level kinds it adds ``probes``: a TLS ClientHello to a loopback listener
after a reset; cgroup BPF connect hooks, enforcing security modules, Landlock and the
firewall after a denied or unreachable connect().
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from homeport.addr import ip, unmap
from homeport.model import Listener, Socket

if TYPE_CHECKING:
    from homeport.explain.meant import Candidate
    from homeport.explain.parse import Parsed

log = logging.getLogger("homeport.explain")


@dataclass(frozen=True, slots=True)
class Resolution:
    """What ``getaddrinfo(name)`` returned here, in the resolver's order."""

    name: str
    addresses: tuple[str, ...] = ()
    error: str | None = None

    def text(self) -> str:
        return ", ".join(self.addresses) if self.addresses else f"not resolved ({self.error})"


@dataclass(frozen=True, slots=True)
class Facts:
    port: int | None = None
    #: Every TCP and UDP socket listening on ``port``, with owners.
    listeners: tuple[Listener, ...] = ()
    #: TCP sockets in TIME-WAIT whose local port is ``port``.
    time_wait: int = 0
    #: How the input's host name resolves here (None for an IP literal or no host).
    resolution: Resolution | None = None
    localhost: Resolution = field(default_factory=lambda: Resolution("localhost", ("127.0.0.1",)))
    ephemeral: tuple[int, int] = (32768, 60999)
    unprivileged_start: int = 1024
    service: str | None = None
    #: Whether the input's address can be bound here now (None: not tested).
    bindable: bool | None = None
    #: IPv6 usable on lo (net.ipv6.conf.lo.disable_ipv6 = 0 and ::1 present).
    ipv6_lo: bool = True
    #: Firewall rules that can drop or reject loopback traffic, as text.
    firewall_lo: tuple[str, ...] = ()
    #: The reject rules among ``firewall_lo`` that can match the port (EHOSTUNREACH or
    #: ECONNREFUSED to the client, by their ``reject with``).
    firewall_reject: tuple[str, ...] = ()
    #: Why the firewall could not be read (None when it was, or was not asked).
    firewall_note: str | None = None
    #: TCP listeners on ports just around ``port`` (gathered when nothing listens on it).
    nearby: tuple[Listener, ...] = ()
    #: When the facts were read (seconds since the epoch), to say how long ago owners started.
    now: float = 0.0
    #: Whether the listener answered a TLS ClientHello (None: not probed, or no answer).
    tls: bool | None = None
    #: The port homeport's own gateway listens on (HOMEPORT_PORT, default 62893).
    gateway_port: int = 62893
    #: cgroup BPF programs on the connect4/6 hooks, "PATH: connect4 (1 program)".
    bpf_hooks: tuple[str, ...] = ()
    #: Why the cgroup BPF hooks could not be read (None when they were, or were not asked).
    bpf_note: str | None = None
    #: Security modules enforcing now (SELinux, AppArmor profiles).
    security: tuple[str, ...] = ()
    #: Landlock ABI version available to programs here (None: none, or not asked).
    landlock: int | None = None
    #: The Unix socket a denied connect() named: "a socket, srw-------, owner root, group root".
    unix_socket: str | None = None
    #: Local clients' connections to the port in CLOSE-WAIT (the server closed them, the
    #: client has not): "127.0.0.1:53422 (node pid 42)".
    close_wait: tuple[str, ...] = ()
    #: What homeport's hosts block, address leases and routes say about the host (issue 11).
    homeport_names: tuple[str, ...] = ()
    #: Whether a socket listens on the Unix path a refusal names (None: not asked / unknown).
    unix_listening: bool | None = None
    #: Loopback listeners near the port or on the wanted service's default port, with what
    #: the audit's fingerprint probes say they are ("did you mean", ``meant``).
    candidates: tuple[Candidate, ...] = ()
    #: The gateway's route names (read-only from the state database).
    routes: tuple[str, ...] = ()
    #: Listening Unix socket paths now (for a refused socket path: the ones meant instead).
    unix_listeners: tuple[str, ...] = ()


def gather(p: Parsed, proc: Path = Path("/proc")) -> Facts:
    """Read this machine's facts for ``p``; each failure degrades to a default, never raises."""
    from homeport import system

    listeners, time_wait = _port_facts(p.port)
    name = p.host if p.host and ip(p.host) is None else None
    no_tcp = not any(x.proto == "tcp" for x in listeners)
    facts = Facts(
        port=p.port,
        listeners=listeners,
        time_wait=time_wait,
        resolution=resolve(name) if name else None,
        localhost=resolve("localhost"),
        ephemeral=system.ephemeral_range(proc),
        unprivileged_start=system.unprivileged_port_start(proc),
        service=system.service_name(p.port) if p.port else None,
        bindable=can_bind(p.host) if p.kind == "not-available" and p.host else None,
        ipv6_lo=ipv6_on_lo(proc),
        nearby=_nearby(p.port) if no_tcp and p.kind in (None, "refused") else (),
        now=time.time(),
        gateway_port=_gateway_port(),
        homeport_names=_homeport_names(p.host),
    )
    if _firewall_matters(p, facts):
        fw, note, rejects = _firewall(p.port)
        facts = replace(facts, firewall_lo=fw, firewall_note=note, firewall_reject=rejects)
    return _meant_facts(p, _connection_facts(p, facts, proc))


def _meant_facts(p: Parsed, f: Facts) -> Facts:
    """What "did you mean" needs, only when the asked address is not served: a refusal, a
    plain address that nothing serves, a name that did not resolve."""
    if p.kind not in (None, "refused", "not-found") or p.path is not None:
        return f
    from homeport.explain import meant
    from homeport.explain.sections import destinations, serves

    tcp = [x for x in f.listeners if x.proto == "tcp"]
    dests = destinations(p, f)
    if dests and all(any(serves(x.socket, d) for x in tcp) for d in dests):
        return f
    routes: tuple[str, ...] = ()
    if (p.host or "").lower().rstrip(".").endswith(".localhost"):
        from homeport.paths import read_route_targets

        routes = tuple(name for name, _target in read_route_targets())
    wanted = p.port is not None or meant.wanted_service(p) is not None
    cands = _candidates(p, f.gateway_port) if wanted and p.kind != "not-found" else ()
    return replace(f, candidates=cands, routes=routes)


#: Time for all the fingerprints of "did you mean" together, and for one probe.
MEANT_BUDGET_S, MEANT_PROBE_S = 1.0, 0.4


def _candidates(p: Parsed, gateway_port: int) -> tuple[Candidate, ...]:
    """Loopback-reachable TCP listeners worth offering, fingerprinted (bounded in time)."""
    from homeport.explain import meant
    from homeport.inventory import sockets

    by_port: dict[int, str] = {}
    for s in sockets(udp=False):
        a = ip(s.local_addr)
        if a is None or s.local_port == gateway_port:
            continue
        a = unmap(a)
        if a.is_loopback or a.is_unspecified:
            host = ("127.0.0.1" if a.version == 4 else "::1") if a.is_unspecified else str(a)
            if s.local_port not in by_port or a.version == 4:
                by_port[s.local_port] = host
    chosen = meant.ports_to_probe(p, sorted(by_port))
    if not chosen:
        return ()
    probe = meant.worth_fingerprinting(p)
    services = fingerprints([(by_port[q], q) for q in chosen]) if probe else {}
    return tuple(meant.Candidate(by_port[q], q, services.get(q)) for q in chosen)


def fingerprints(targets: list[tuple[str, int]]) -> dict[int, str]:
    """The audit's read-only fingerprint of each loopback target, all at once, within
    ``MEANT_BUDGET_S``; a target not identified in time is left out."""
    import asyncio

    from homeport.audit.probe import Prober, Target, fingerprint

    async def one(prober: Prober, host: str, port: int) -> tuple[int, str | None]:
        fp = await fingerprint(prober, Target(host, port))
        return port, fp.identity.service if fp.identity else None

    async def run() -> dict[int, str]:
        prober = Prober(timeout=MEANT_PROBE_S, per_target=2)
        tasks = [asyncio.ensure_future(one(prober, h, q)) for h, q in targets]
        done, pending = await asyncio.wait(tasks, timeout=MEANT_BUDGET_S)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        out: dict[int, str] = {}
        for t in done:
            if t.exception() is None:
                port, svc = t.result()
                if svc is not None:
                    out[port] = svc
        return out

    try:
        return asyncio.run(run())
    except (OSError, RuntimeError) as exc:  # RuntimeError: called inside a running loop
        log.debug("did-you-mean fingerprints: %s", exc)
        return {}


def _homeport_names(host: str | None) -> tuple[str, ...]:
    """Only for names under .localhost and 127/8 addresses other than 127.0.0.1: the only
    ones homeport's block and leases can hold (and a plain explain skips the reads)."""
    if host is None:
        return ()
    h = host.lower().rstrip(".")
    if not (h.endswith(".localhost") or (h.startswith("127.") and h != "127.0.0.1")):
        return ()
    from homeport.hosts.names import name_lines

    return name_lines(h)


def _connection_facts(p: Parsed, f: Facts, proc: Path) -> Facts:
    """The probes the connection-level kinds need, and only those."""
    from homeport.explain import probes

    # Not the gateway's port: it speaks plain HTTP, and a ClientHello would only add a
    # bad-request line to its access log.
    probe_tls = p.port is not None and p.port != f.gateway_port and not client_spoke_tls(p.text)
    if p.kind == "reset" and probe_tls and p.port is not None:
        from homeport.explain.sections import destinations, serves

        tcp = [x for x in f.listeners if x.proto == "tcp"]
        served = [d for d in destinations(p, f) if any(serves(x.socket, d) for x in tcp)]
        if served:
            tls = probes.tls_answers(served[0], p.port)
            return replace(f, tls=tls, close_wait=_close_wait(p.port, served))
    if p.kind == "refused" and p.path:
        listening = probes.unix_listeners(proc)
        return replace(
            f,
            unix_socket=probes.describe_socket(p.path),
            unix_listening=probes.unix_listening(p.path, proc),
            unix_listeners=tuple(sorted(listening)),
        )
    if p.kind == "connect-denied":
        from homeport.explain.conn import unix_path

        path = unix_path(p.text)
        hooks, note = probes.cgroup_connect_hooks(proc)
        return replace(
            f,
            bpf_hooks=hooks,
            bpf_note=note,
            security=probes.security_modules(),
            landlock=probes.landlock_abi(),
            unix_socket=probes.describe_socket(path) if path else None,
        )
    return f


def _close_wait(port: int, dests: list[str]) -> tuple[str, ...]:
    """Client ends of connections to ``dests``:``port`` that the server has closed and the
    client still holds (CLOSE-WAIT, RFC 9293 §3.3.2): a keep-alive pool's stale entries.
    Their owners are looked up only when there are some: one owner walk for their inodes."""
    from homeport.explain.sections import host_port
    from homeport.inventory.procfs import ProcReader, scan_owners

    wanted = {_canonical(d) for d in dests}
    stale = [
        s
        for s in _client_ends(port)
        if s.state == "CLOSE-WAIT" and _canonical(s.remote_addr) in wanted
    ]
    if not stale:
        return ()
    holders = scan_owners({s.inode for s in stale if s.inode > 0}).holders
    reader = ProcReader()

    def owners(inode: int) -> str:
        names = [f"{st[0]} pid {pid}" for pid in holders.get(inode, ()) if (st := reader.stat(pid))]
        return ", ".join(names) or "owner unknown"

    return tuple(f"{host_port(s.local_addr, s.local_port)} ({owners(s.inode)})" for s in stale)


def _client_ends(port: int) -> list[Socket]:
    """TCP sockets whose remote port is ``port``: filtered in the kernel where sock_diag
    works (5,500 sockets here: 72 ms for the whole table), else from the facade's dump."""
    try:
        from homeport.inventory.netlink import PortFilter, dump

        return dump(("tcp",), False, PortFilter(port, "dst"))
    except (OSError, AttributeError):  # no AF_NETLINK, or no inet_diag
        from homeport.inventory import sockets

        return [s for s in sockets(udp=False, all_states=True) if s.remote_port == port]


def _canonical(addr: str) -> str:
    a = ip(addr)
    return str(unmap(a)) if a is not None else addr


def client_spoke_tls(text: str) -> bool:
    """Whether the error text shows the client used TLS itself (then a TLS port is no mistake)."""
    low = text.lower()
    return "https://" in low or "ssl" in low or "tls" in low


def _gateway_port() -> int:
    text = os.environ.get("HOMEPORT_PORT", "")
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else 62893


def _firewall_matters(p: Parsed, f: Facts) -> bool:
    """A DROP rule explains a loopback timeout, a reject rule a loopback EHOSTUNREACH, and both
    are candidates for a denied connect(); a REJECT rule explains a refusal only while a
    socket that should receive the connection listens. Otherwise spare the nft/iptables run."""
    if p.kind in ("timeout", "connect-denied", "unreachable"):
        return True
    if p.kind != "refused":
        return False
    from homeport.explain.sections import destinations, serves

    tcp = [x for x in f.listeners if x.proto == "tcp"]
    return any(serves(x.socket, d) for d in destinations(p, f) for x in tcp)


def _port_facts(port: int | None) -> tuple[tuple[Listener, ...], int]:
    if port is None:
        return (), 0
    from homeport.inventory import listeners, sockets

    found = tuple(listeners(port=port))
    tw = sum(1 for s in sockets(udp=False, all_states=True, port=port) if s.state == "TIME-WAIT")
    return found, tw


_NEAR_BELOW, _NEAR_ABOVE, _NEAR_MAX = 3, 10, 3


def _nearby(port: int | None) -> tuple[Listener, ...]:
    """Listeners a few ports around ``port`` (at most 3 ports): one kernel dump to find the
    ports, then one owner walk for them all (a walk per port would read every fd link again)."""
    if port is None:
        return ()
    from homeport.inventory import listeners, sockets

    near = sorted(
        {
            s.local_port
            for s in sockets(udp=False)
            if port - _NEAR_BELOW <= s.local_port <= port + _NEAR_ABOVE and s.local_port != port
        },
        key=lambda q: (abs(q - port), q),
    )[:_NEAR_MAX]
    if not near:
        return ()
    wanted = set(near)
    return tuple(x for x in listeners(udp=False) if x.port in wanted)


def resolve(name: str) -> Resolution:
    """``getaddrinfo`` as a connecting client sees it: unique addresses, resolver order."""
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return Resolution(name, (), getattr(exc, "strerror", None) or str(exc))
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return Resolution(name, tuple(seen))


def can_bind(host: str) -> bool | None:
    """Bind ``host`` on port 0 and close: False only for EADDRNOTAVAIL, None when unsure."""
    a = ip(host)
    if a is None:
        return None
    fam = socket.AF_INET6 if a.version == 6 else socket.AF_INET
    try:
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
    except OSError as exc:
        return False if exc.errno == errno.EADDRNOTAVAIL else None
    return True


def ipv6_on_lo(proc: Path = Path("/proc")) -> bool:
    try:
        disabled = (proc / "sys/net/ipv6/conf/lo/disable_ipv6").read_text().strip() == "1"
        present = "00000000000000000000000000000001" in (proc / "net/if_inet6").read_text()
    except OSError:
        return False
    return present and not disabled


def _firewall(port: int | None) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    """(blocking texts, why unread, the reject rules among them that can match ``port``)."""
    from homeport.doctor.firewall import describe, lo_effects, read_firewall

    reading = read_firewall()
    if reading.status != "ok":
        return (), reading.message, ()
    eff = lo_effects(reading.chains, reading.rules)
    texts = [
        f"{c.source} {c.table} {c.name}: policy drop, no rule accepts lo" for c in eff.closed_chains
    ]
    texts += [describe(r) for r in eff.blocking]
    rejects = tuple(
        describe(r)
        for r in eff.blocking
        if r.verdict == "reject"
        and (port is None or not r.tcp_dports or any(a <= port <= b for a, b in r.tcp_dports))
    )
    return tuple(texts), None, rejects
