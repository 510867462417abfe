"""Pure: the doctor's checks over gathered machine facts.

``evaluate(facts)`` returns one ``Check`` per entry of ``CHECKS``, each ``ok``, ``warn``,
``fail`` or ``skip`` (could not be verified here, e.g. no permission to read the firewall),
with a fix a person can run. Nothing here reads the machine: ``gather.py`` does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from homeport.doctor.firewall import describe, lo_effects
from homeport.doctor.records import (
    DEV_PORTS,
    HOME_PORT,
    STATUS_ORDER,
    Check,
    DoctorFacts,
    LoopbackFacts,
    LoopbackListener,
    Report,
    Status,
    parse_hosts,
    parse_port_list,
    parse_sockstat_tw,
)
from homeport.doctor.tls import CHECKS as TLS_CHECKS

__all__ = [
    "CHECKS",
    "DEV_PORTS",
    "HOME_PORT",
    "STATUS_ORDER",
    "TW_FAIL_SHARE",
    "TW_WARN_SHARE",
    "Check",
    "DoctorFacts",
    "LoopbackFacts",
    "LoopbackListener",
    "Report",
    "Status",
    "evaluate",
    "parse_hosts",
    "parse_port_list",
    "parse_sockstat_tw",
    "unreachable_by_name",
]


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- the checks


def check_interface(f: DoctorFacts) -> Check:
    t = "loopback interface"
    lo = f.loopback
    if not lo.exists:
        return Check(
            "loopback.interface",
            t,
            "fail",
            "there is no `lo` interface",
            fix="load the loopback device (it is built into every Linux kernel)",
        )
    if lo.up is False:
        return Check(
            "loopback.interface",
            t,
            "fail",
            "lo is down: nothing on 127.0.0.1 works",
            fix="sudo ip link set lo up",
        )
    return Check("loopback.interface", t, "ok", "lo is up")


def check_ipv4(f: DoctorFacts) -> Check:
    t = "IPv4 loopback"
    if "127.0.0.1" in f.loopback.ipv4:
        return Check(
            "loopback.ipv4",
            t,
            "ok",
            "127.0.0.1 is on lo",
            ("Linux answers for the whole 127.0.0.0/8 on lo",),
        )
    return Check(
        "loopback.ipv4",
        t,
        "fail",
        "127.0.0.1 is not on lo",
        fix="sudo ip addr add 127.0.0.1/8 dev lo",
    )


def check_ipv6(f: DoctorFacts) -> Check:
    t = "IPv6 loopback"
    lo = f.loopback
    if lo.ipv6_disabled is None:
        return Check(
            "loopback.ipv6",
            t,
            "warn",
            "this kernel has no IPv6: ::1 does not exist",
            ("servers that bind ::1 fail with EADDRNOTAVAIL",),
        )
    if lo.ipv6_disabled or "::1" not in lo.ipv6:
        return Check(
            "loopback.ipv6",
            t,
            "warn",
            "::1 is not usable: IPv6 is disabled on lo",
            (
                "servers binding ::1 fail with EADDRNOTAVAIL; clients that resolve localhost"
                " to ::1 first are refused",
            ),
            fix="sudo sysctl -w net.ipv6.conf.lo.disable_ipv6=0",
        )
    return Check("loopback.ipv6", t, "ok", "::1 is on lo")


def check_hosts(f: DoctorFacts) -> Check:
    t = "localhost in /etc/hosts"
    if f.hosts_text is None:
        return Check(
            "localhost.hosts",
            t,
            "warn",
            "/etc/hosts is missing or unreadable",
            fix="create it with `127.0.0.1 localhost` and `::1 localhost`",
        )
    addrs = parse_hosts(f.hosts_text).get("localhost", [])
    if not addrs:
        return Check(
            "localhost.hosts",
            t,
            "warn",
            "/etc/hosts does not map localhost",
            ("resolution then depends on DNS or nss-myhostname",),
            fix="add `127.0.0.1 localhost` and `::1 localhost` to /etc/hosts",
        )
    bad = [a for a in addrs if not _is_loopback(a)]
    if bad:
        return Check(
            "localhost.hosts",
            t,
            "fail",
            f"/etc/hosts maps localhost to a non-loopback address: {', '.join(bad)}",
            ("traffic meant for this machine goes elsewhere",),
            fix="map localhost only to 127.0.0.1 and ::1",
        )
    detail = [f"listed: {', '.join(addrs)}"]
    if not any(":" in a for a in addrs):
        detail.append("::1 is not listed, so by name localhost is IPv4 only here")
    return Check("localhost.hosts", t, "ok", "localhost maps to loopback", tuple(detail))


MAX_LISTED = 8
#: Share of the ephemeral range held in TIME-WAIT toward one destination: warn, fail.
TW_WARN_SHARE, TW_FAIL_SHARE = 0.2, 0.5


def check_resolution(f: DoctorFacts) -> Check:
    t = "localhost resolution"
    r = f.localhost
    if not r.addresses:
        return Check(
            "localhost.resolution",
            t,
            "fail",
            f"localhost does not resolve: {r.error}",
            fix="add `127.0.0.1 localhost` and `::1 localhost` to /etc/hosts",
        )
    bad = [a for a in r.addresses if not _is_loopback(a)]
    if bad:
        return Check(
            "localhost.resolution",
            t,
            "fail",
            f"localhost resolves to non-loopback {', '.join(bad)}",
            fix="map localhost only to 127.0.0.1 and ::1 in /etc/hosts",
        )
    first = r.addresses[0]
    order = ", ".join(r.addresses)
    detail: tuple[str, ...] = (
        f"order: {order}; clients that try only the first address (Node 17-19, many"
        f" scripts) reach {first} only",
    )
    lo, hi = f.ephemeral
    unreachable = unreachable_by_name(f.listeners, first)
    # bind(0) servers (test fixtures, helpers) sit inside the ephemeral range and are found
    # by their port number, not typed as http://localhost:PORT: count them, do not warn.
    fixed = [x for x in unreachable if not lo <= x.port <= hi]
    if len(fixed) < len(unreachable):
        detail += (
            f"{len(unreachable) - len(fixed)} listener(s) on ::1 or 127.0.0.1 only inside the"
            f" ephemeral range {lo}-{hi} (bind(0) servers) are not weighed",
        )
    if fixed:
        return _unreachable_check(t, first, detail, fixed)
    return Check("localhost.resolution", t, "ok", f"localhost resolves to {order}", detail)


def _unreachable_check(
    title: str, first: str, detail: tuple[str, ...], unreachable: list[LoopbackListener]
) -> Check:
    lines = [
        f"port {x.port} listens on {x.address} only ({x.owner or 'owner unknown'}):"
        f" http://localhost:{x.port} goes to {first} first and is refused there"
        for x in unreachable[:MAX_LISTED]
    ]
    if len(unreachable) > MAX_LISTED:
        lines.append(f"… and {len(unreachable) - MAX_LISTED} more (`homeport ls`)")
    return Check(
        "localhost.resolution",
        title,
        "warn",
        f"localhost goes to {first} first, but {len(unreachable)} loopback"
        " listener(s) do not listen there",
        (*detail, *lines),
        fix="bind those servers to both families (`::` dual-stack, or 127.0.0.1"
        " and ::1), or use 127.0.0.1 / [::1] in URLs",
    )


def unreachable_by_name(
    listeners: tuple[LoopbackListener, ...], first: str
) -> list[LoopbackListener]:
    """Listeners whose port has no socket receiving ``first`` (localhost's first address)."""
    from homeport.explain.sections import serves
    from homeport.model import Socket

    by_port: dict[int, list[LoopbackListener]] = {}
    for x in listeners:
        by_port.setdefault(x.port, []).append(x)
    out: list[LoopbackListener] = []
    for port, group in sorted(by_port.items()):
        socks = [
            Socket(
                "tcp",
                6 if ":" in x.address else 4,
                x.address,
                port,
                "",
                0,
                "LISTEN",
                0,
                v6only=x.v6only,
            )
            for x in group
        ]
        if not any(serves(s, first) for s in socks):
            # Only the two addresses `localhost` stands for: 127.0.0.2 is a choice, not a slip.
            out.extend(x for x in group if x.address in ("127.0.0.1", "::1"))
    return out


def check_subdomains(f: DoctorFacts) -> Check:
    t = "*.localhost outside browsers"
    r = f.subdomain
    if r.addresses and all(_is_loopback(a) for a in r.addresses):
        return Check(
            "localhost.subdomains",
            t,
            "ok",
            f"{r.name} resolves to {', '.join(r.addresses)} for every program here",
        )
    if r.addresses:
        return Check(
            "localhost.subdomains",
            t,
            "fail",
            f"{r.name} resolves to non-loopback {', '.join(r.addresses)}",
            (
                "a resolver answers .localhost from DNS, against RFC 6761 §6.3: a name"
                " meant for this machine reaches another",
            ),
            fix="make the resolver answer *.localhost locally (nss-myhostname or systemd-resolved)",
        )
    return Check(
        "localhost.subdomains",
        t,
        "warn",
        f"*.localhost does not resolve outside browsers here ({r.error})",
        (
            "browsers (Chrome, Firefox, Edge) resolve *.localhost to loopback themselves;"
            " curl >= 7.85 does too; Python, Node and most CLIs ask the system resolver",
        ),
        fix="install nss-myhostname and put `myhostname` in the hosts: line of"
        " /etc/nsswitch.conf, or add each name to /etc/hosts",
    )


def check_ephemeral(f: DoctorFacts) -> Check:
    t = "ephemeral port range"
    lo, hi = f.ephemeral
    size = hi - lo + 1
    reserved = parse_port_list(f.reserved_ports)
    inside = [p for p in DEV_PORTS if lo <= p <= hi and p not in reserved]
    detail = [
        f"net.ipv4.ip_local_port_range = {lo} {hi} ({size} ports): source ports of"
        " outgoing connections and bind(0) come from here"
    ]
    if inside:
        ports = ",".join(map(str, inside))
        detail.append(
            f"dev ports inside it: {ports}; an outgoing connection can take them"
            " at random and the server then fails with EADDRINUSE"
        )
        return Check(
            "ports.ephemeral",
            t,
            "warn",
            f"{len(inside)} common dev port(s) fall inside the ephemeral range {lo}-{hi}",
            tuple(detail),
            fix=f"sudo sysctl -w net.ipv4.ip_local_reserved_ports={ports}",
        )
    if size < 4096:
        return Check(
            "ports.ephemeral",
            t,
            "warn",
            f"the ephemeral range is small ({size} ports)",
            tuple(detail),
            fix="sudo sysctl -w net.ipv4.ip_local_port_range='32768 60999'",
        )
    return Check("ports.ephemeral", t, "ok", f"{lo}-{hi}, no common dev port inside", tuple(detail))


#: The ways to serve ports 80/443 without running homeport as root (issue 15), for the detail.
LOW_PORT_WAYS = (
    "for http://NAME.localhost without a port, one of:",
    "  homeport service install --ports 80,443  (systemd socket units own the ports and"
    " hand them to your gateway; root once)",
    "  sudo sysctl -w net.ipv4.ip_unprivileged_port_start=80  (any user's program may"
    " then bind 80 and up)",
    "  sudo setcap cap_net_bind_service=+ep BINARY  (only a dedicated binary, never the"
    " Python interpreter: every script would get the privilege)",
)


def check_unprivileged(f: DoctorFacts) -> Check:
    """Which way to low ports is in place: socket units, the sysctl, or privilege."""
    t = "unprivileged port start"
    s = f.unprivileged_start
    sysctl = f"net.ipv4.ip_unprivileged_port_start = {s}"
    if f.port_units:
        units = ", ".join(f.port_units)
        return Check(
            "ports.unprivileged",
            t,
            "ok",
            "low ports come from systemd socket units (socket activation)",
            (f"in place: {units}", sysctl),
        )
    if s == 0:
        return Check(
            "ports.unprivileged",
            t,
            "ok",
            "any user may bind any port here",
            (f"in place: {sysctl} (as Docker Desktop sets it)",),
        )
    if s <= 80:
        return Check(
            "ports.unprivileged", t, "ok", f"any user may bind port {s} and up",
            (f"in place: {sysctl}",),
        )  # fmt: skip
    who = (
        "this user may bind them (root or CAP_NET_BIND_SERVICE)"
        if f.can_bind_privileged
        else "this user may not"
    )
    return Check(
        "ports.unprivileged", t, "ok", f"ports below {s} need privilege; {who}",
        (sysctl, *LOW_PORT_WAYS),
    )  # fmt: skip


def check_firewall(f: DoctorFacts) -> Check:
    t = "firewall rules on lo"
    fw = f.firewall
    if fw.status != "ok":
        return Check(
            "firewall.lo",
            t,
            "skip",
            f"could not read the firewall ({fw.message})",
            fix="run as root to read nft/iptables rules" if fw.status == "denied" else None,
        )
    eff = lo_effects(fw.chains, fw.rules)
    if eff.closed_chains:
        names = ", ".join(f"{c.table} {c.name}" for c in eff.closed_chains)
        return Check(
            "firewall.lo",
            t,
            "fail",
            f"chain(s) {names} drop by default and no rule accepts lo",
            ("loopback connections time out instead of being refused",),
            fix="nft insert rule <family> <table> <chain> iif lo accept"
            " (or: iptables -I INPUT -i lo -j ACCEPT)",
        )
    if eff.blocking:
        return Check(
            "firewall.lo",
            t,
            "warn",
            f"{len(eff.blocking)} {fw.source} rule(s) can drop or reject loopback traffic",
            tuple(describe(r) for r in eff.blocking[:10]),
            fix="check these rules are meant to apply to lo; add `iif lo accept` first",
        )
    n = len(fw.rules)
    return Check(
        "firewall.lo",
        t,
        "ok",
        f"{fw.source}: {n} rule(s), none blocks lo" if n else f"{fw.source}: no rules",
    )


def check_time_wait(f: DoctorFacts) -> Check:
    t = "TIME-WAIT pressure"
    if f.time_wait is None:
        return Check("tcp.time_wait", t, "skip", "/proc/net/sockstat not readable")
    lo, hi = f.ephemeral
    size = hi - lo + 1
    summary = f"{f.time_wait} TCP sockets in TIME-WAIT"
    detail = [
        "a closed client connection keeps its source port for 60 s (TCP_TIMEWAIT_LEN,"
        " include/net/tcp.h) toward the same destination; connect() fails with"
        f" EADDRNOTAVAIL when all {size} ephemeral ports toward one destination are held"
    ]
    if f.time_wait_top is None:
        return Check("tcp.time_wait", t, "ok", summary, tuple(detail))
    dest, count = f.time_wait_top
    share = count / size
    summary += f"; busiest destination {dest}: {count} ({share:.0%} of the ephemeral range)"
    if share >= TW_FAIL_SHARE:
        return Check(
            "tcp.time_wait",
            t,
            "fail",
            summary,
            tuple(detail),
            fix="reuse connections (keep-alive, pools); or widen net.ipv4.ip_local_port_range",
        )
    if share >= TW_WARN_SHARE:
        return Check(
            "tcp.time_wait",
            t,
            "warn",
            summary,
            tuple(detail),
            fix="reuse connections (keep-alive, pools) in load tests and clients",
        )
    return Check("tcp.time_wait", t, "ok", summary, tuple(detail))


def check_home(f: DoctorFacts) -> Check:
    t = f"homeport's home port {HOME_PORT}"
    if f.home_owner is None:
        return Check("homeport.port", t, "ok", f"{HOME_PORT} is free for `homeport up`")
    if "homeport" in f.home_owner:
        return Check("homeport.port", t, "ok", f"{HOME_PORT} is homeport's ({f.home_owner})")
    return Check(
        "homeport.port",
        t,
        "warn",
        f"{HOME_PORT} is held by {f.home_owner}",
        fix=f"stop it (`homeport who {HOME_PORT}`) or start homeport on another port",
    )


def check_hosts_block(f: DoctorFacts) -> Check:
    """Whether homeport's hosts block maps every route and address name as it should."""
    from homeport.hosts.block import apply_block, entry, split

    t = "names for every client (homeport's hosts block)"
    if f.managed_hosts_text is None or f.hosts_wanted is None:
        return Check("hosts.block", t, "skip", "the hosts file or the state could not be read")
    wanted = [entry(n, a) for n, a in f.hosts_wanted]
    has_block = split(f.managed_hosts_text).block is not None
    if not wanted and not has_block:
        return Check("hosts.block", t, "ok", "no route or address names to map yet")
    if apply_block(f.managed_hosts_text, wanted) == f.managed_hosts_text and has_block:
        return Check("hosts.block", t, "ok", f"the block is current ({len(wanted)} names)")
    return Check(
        "hosts.block",
        t,
        "warn",
        "the block is missing or stale: psql, redis-cli, curl … cannot resolve every name",
        detail=tuple(e.line() for e in wanted),
        fix="sudo homeport hosts sync   (homeport hosts sync --dry-run shows the change)",
    )


def check_nss_order(f: DoctorFacts) -> Check:
    from homeport.hosts.block import nss_files_first

    t = "NSS reads the hosts file before myhostname"
    if f.nsswitch_text is None:
        return Check("hosts.nss", t, "skip", "no /etc/nsswitch.conf here")
    ok, why = nss_files_first(f.nsswitch_text)
    if ok:
        return Check("hosts.nss", t, "ok", why)
    return Check(
        "hosts.nss",
        t,
        "warn",
        why,
        fix="in /etc/nsswitch.conf put files first on the hosts: line, e.g."
        " `hosts: files myhostname dns`",
    )


CHECKS: tuple[Callable[[DoctorFacts], Check], ...] = (
    check_interface,
    check_ipv4,
    check_ipv6,
    check_hosts,
    check_resolution,
    check_subdomains,
    check_ephemeral,
    check_unprivileged,
    check_firewall,
    check_time_wait,
    check_home,
    *TLS_CHECKS,
    check_hosts_block,
    check_nss_order,
)


def evaluate(f: DoctorFacts) -> Report:
    return Report(tuple(check(f) for check in CHECKS))
