"""The doctor's edge: read this machine into ``DoctorFacts``.

Every reader degrades: a missing file, a denied ioctl or an absent tool becomes a
"don't know" value that the checks turn into ``skip`` or a note, never an exception.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from homeport.doctor.checks import HOME_PORT, DoctorFacts, LoopbackFacts, LoopbackListener
from homeport.doctor.firewall import FirewallReading, read_firewall
from homeport.doctor.records import TlsFacts, TlsStore
from homeport.explain.facts import Resolution, resolve
from homeport.model import Socket

log = logging.getLogger("homeport.doctor")

PROC = Path("/proc")
SYS = Path("/sys")
_SIOCGIFADDR = 0x8915  # include/uapi/linux/sockios.h
_IFF_UP = 0x1  # include/uapi/linux/if.h
_CAP_NET_BIND_SERVICE = 10  # include/uapi/linux/capability.h


def gather(proc: Path = PROC, sys_root: Path = SYS, etc: Path = Path("/etc")) -> DoctorFacts:
    from homeport import system

    localhost = resolve("localhost")
    ephemeral = system.ephemeral_range(proc)
    listeners, home_owner = _listeners(_tcp_sockets(all_states=False), localhost, ephemeral)
    time_wait = _time_wait(proc)
    return DoctorFacts(
        loopback=loopback(proc, sys_root),
        hosts_text=_read(etc / "hosts"),
        localhost=localhost,
        subdomain=resolve("homeport-doctor.localhost"),
        ephemeral=ephemeral,
        reserved_ports=_read(proc / "sys/net/ipv4/ip_local_reserved_ports") or "",
        unprivileged_start=system.unprivileged_port_start(proc),
        can_bind_privileged=can_bind_privileged(_read(proc / "self/status") or ""),
        port_units=port_units(etc / "systemd/system"),
        firewall=_firewall(),
        time_wait=time_wait,
        time_wait_top=_time_wait_top(time_wait, ephemeral),
        listeners=listeners,
        home_owner=home_owner,
        tls=gather_tls(),
        nsswitch_text=_read(etc / "nsswitch.conf"),
        **_hosts_block(),
    )


def gather_tls(state: Path | None = None) -> TlsFacts:
    """The local CA's facts; ``cryptography`` and the store checks are paid for only when a
    CA exists (a machine that never used HTTPS costs one stat)."""
    from homeport.paths import state_dir

    directory = state if state is not None else state_dir(create=False)
    cert = directory / "tls" / "ca.pem"
    if not cert.exists():
        return TlsFacts(ca_cert=str(cert))
    from homeport.errors import HomeportError
    from homeport.tls.authority import Authority, utcnow
    from homeport.tls.stores import run

    authority = Authority(directory)
    try:
        key_mode = authority.key_path.stat().st_mode & 0o777  # before the load narrows it
        report = run("status", directory)
    except (HomeportError, OSError) as exc:
        return TlsFacts(ca_cert=str(cert), exists=True, error=str(exc))
    return TlsFacts(
        ca_cert=str(cert),
        exists=True,
        key_mode=key_mode,
        now=utcnow().isoformat(),
        ca_not_after=report.not_after or "",
        leaves=tuple((k, t.isoformat()) for k, t in authority.cached_leaves()),
        stores=tuple(TlsStore(s.id, s.trusted, s.detail) for s in report.stores),
        commands=tuple(report.commands()),
    )


def port_units(directory: Path) -> tuple[str, ...]:
    """The socket units ``homeport service install --ports`` writes (homeport-USER-P.socket)."""
    try:
        return tuple(sorted(p.name for p in directory.glob("homeport-*.socket")))
    except OSError:
        return ()


def _hosts_block() -> dict[str, Any]:
    """The managed hosts file and the names its block should hold."""
    from homeport.hosts.names import gather as wanted
    from homeport.hosts.write import hosts_path

    try:
        pairs = tuple((e.name, e.address) for e in wanted())
    except Exception as exc:  # a damaged lease file or database must not stop the doctor
        log.debug("hosts block names unavailable: %s", exc)
        pairs = None
    return {"managed_hosts_text": _read(hosts_path()), "hosts_wanted": pairs}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def loopback(proc: Path = PROC, sys_root: Path = SYS) -> LoopbackFacts:
    """Linux reads sysfs, /proc and one ioctl; other systems ask psutil (lo0 on macOS)."""
    if not sys.platform.startswith("linux"):
        return loopback_portable()
    flags = _read(sys_root / "class/net/lo/flags")
    exists = flags is not None or (sys_root / "class/net/lo").exists()
    up = bool(int(flags.strip(), 16) & _IFF_UP) if flags else None
    inet6 = _read(proc / "net/if_inet6")
    disabled = _read(proc / "sys/net/ipv6/conf/lo/disable_ipv6")
    return LoopbackFacts(
        exists=exists,
        up=up,
        ipv4=_lo_ipv4(),
        ipv6=parse_if_inet6(inet6 or "", "lo"),
        ipv6_disabled=None
        if inet6 is None and disabled is None
        else (disabled or "0").strip() == "1",
    )


def loopback_portable() -> LoopbackFacts:
    import psutil

    addrs = psutil.net_if_addrs()
    name = next(
        (n for n, a in addrs.items() if any(x.address == "127.0.0.1" for x in a)),
        next((n for n in ("lo0", "lo") if n in addrs), None),
    )
    if name is None:
        return LoopbackFacts(exists=False, up=None, ipv4=(), ipv6=(), ipv6_disabled=None)
    stats = psutil.net_if_stats().get(name)
    found = addrs[name]
    v4 = tuple(x.address for x in found if x.family == socket.AF_INET)
    v6 = tuple(x.address.split("%", 1)[0] for x in found if x.family == socket.AF_INET6)
    return LoopbackFacts(True, stats.isup if stats else None, v4, v6, "::1" not in v6)


def parse_if_inet6(text: str, ifname: str) -> tuple[str, ...]:
    """``/proc/net/if_inet6``: ``ADDR32HEX IFINDEX PREFIXLEN SCOPE FLAGS NAME`` per line."""
    out: list[str] = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and f[5] == ifname and len(f[0]) == 32:
            packed = bytes.fromhex(f[0])
            out.append(socket.inet_ntop(socket.AF_INET6, packed))
    return tuple(out)


def _lo_ipv4() -> tuple[str, ...]:
    """lo's primary IPv4 address through SIOCGIFADDR (no `ip` binary needed)."""
    import fcntl  # POSIX only; loopback() calls this on Linux alone

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("256s", b"lo")
            res = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, req)
    except OSError as exc:
        log.debug("SIOCGIFADDR lo: %s", exc)
        return ()
    return (socket.inet_ntoa(res[20:24]),)  # struct ifreq: name[16], sockaddr_in at 16


def can_bind_privileged(status_text: str, euid: int | None = None) -> bool:
    """Root, or CAP_NET_BIND_SERVICE in the effective set (``CapEff:`` in /proc/self/status)."""
    if euid is None:
        euid = os.geteuid() if hasattr(os, "geteuid") else -1
    if euid == 0:
        return True
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> _CAP_NET_BIND_SERVICE & 1)
    return False


def _firewall() -> FirewallReading:
    try:
        return read_firewall()
    except Exception as exc:  # a broken tool must not take the doctor down; say why
        log.debug("firewall read failed", exc_info=True)
        return FirewallReading("error", message=str(exc))


def _time_wait(proc: Path) -> int | None:
    from homeport.doctor.checks import parse_sockstat_tw

    total: int | None = None
    for name in ("net/sockstat", "net/sockstat6"):
        text = _read(proc / name)
        tw = parse_sockstat_tw(text) if text else None
        if tw is not None:
            total = (total or 0) + tw
    return total


def _tcp_sockets(all_states: bool) -> list[Socket] | None:
    from homeport.inventory import sockets

    try:
        return sockets(udp=False, all_states=all_states)
    except OSError as exc:
        log.debug("socket dump failed: %s", exc)
        return None


def _listeners(
    socks: list[Socket] | None, localhost: Resolution, ephemeral: tuple[int, int]
) -> tuple[tuple[LoopbackListener, ...], str | None]:
    """Loopback and wildcard TCP listeners from the dump; owners only where a check will name
    them and for the home port, all found in one /proc/*/fd walk (the expensive part)."""
    from homeport.addr import address_class
    from homeport.doctor.checks import MAX_LISTED, unreachable_by_name

    found = [
        LoopbackListener(s.local_port, s.local_addr, None, s.v6only)
        for s in socks or ()
        if s.state == "LISTEN" and address_class(s.local_addr) in ("loopback", "unspecified")
    ]
    named: set[int] = set()
    if localhost.addresses:
        lo, hi = ephemeral
        gone = unreachable_by_name(tuple(found), localhost.addresses[0])
        shown = [x for x in gone if not lo <= x.port <= hi][:MAX_LISTED]
        named = {x.port for x in shown}
    held = any(s.state == "LISTEN" and s.local_port == HOME_PORT for s in socks or ())
    owners = _owners(named | ({HOME_PORT} if held else set()))
    out = tuple(replace(x, owner=owners[x.port][0]) if x.port in owners else x for x in found)
    if not held:
        return out, None
    name, cmd = owners.get(HOME_PORT, ("unknown owner", ""))
    return out, name + (" homeport" if "homeport" in cmd else "")


def _owners(ports: set[int]) -> dict[int, tuple[str, str]]:
    """port -> ("name, pid N", command line) of its first owner, for a handful of ports."""
    if not ports:
        return {}
    from homeport.inventory import listeners

    out: dict[int, tuple[str, str]] = {}
    if len(ports) == 1:  # one port: the walk can stop as soon as it finds the socket
        found = listeners(port=next(iter(ports)), udp=False)
    else:
        found = [x for x in listeners(udp=False) if x.port in ports]
    for x in found:
        if x.owners and x.port not in out:
            o = x.owners[0]
            out[x.port] = (f"{o.name}, pid {o.pid}", " ".join(o.cmdline))
    return out


def _time_wait_top(total: int | None, ephemeral: tuple[int, int]) -> tuple[str, int] | None:
    """The destination holding most TIME-WAIT source ports. The full socket dump this needs
    is skipped when even the total (/proc/net/sockstat) is below the warning share."""
    from collections import Counter

    from homeport.doctor.checks import TW_WARN_SHARE

    size = ephemeral[1] - ephemeral[0] + 1
    if total is not None and total < TW_WARN_SHARE * size:
        return None
    socks = _tcp_sockets(all_states=True) or []
    counts = Counter((s.remote_addr, s.remote_port) for s in socks if s.state == "TIME-WAIT")
    if not counts:
        return None
    (addr, port), n = counts.most_common(1)[0]
    return (f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}", n)
