"""Pure: the descriptive sections of an explanation (address, port, live now).

Every function takes the parsed input and ``Facts`` and returns lines of text; nothing here
decides what went wrong (that is ``diagnose``), it only says what is true.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeport.addr import address_class, in_range, ip, needs_privilege, port_class, unmap

if TYPE_CHECKING:  # records only: `serves` is borrowed by the doctor without the rule table
    from homeport.explain.facts import Facts
    from homeport.explain.parse import Parsed
    from homeport.model import Listener, Socket

_PORT_CLASS = {
    "system": "a system port (0-1023, RFC 6335 §6)",
    "registered": "a registered port (1024-49151, RFC 6335 §6)",
    "dynamic": "a dynamic/private port (49152-65535, RFC 6335 §6)",
}


def host_port(host: str, port: int | None) -> str:
    h = f"[{host}]" if ":" in host else host
    return f"{h}:{port}" if port else h


def destinations(p: Parsed, f: Facts) -> tuple[str, ...]:
    """The addresses a client using ``p.host`` connects to, in the order it tries them."""
    if p.host is None:
        return ("127.0.0.1", "::1")  # no address in the text: loopback is the likely place
    a = ip(p.host)
    if a is None:
        if f.resolution and f.resolution.addresses:
            return f.resolution.addresses
        name = p.host.lower().rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):
            return ("127.0.0.1", "::1")  # where browsers send it (RFC 6761 §6.3)
        return ()
    if a.is_unspecified:  # Linux delivers a connect() to 0.0.0.0 / :: to this machine
        return ("127.0.0.1",) if a.version == 4 else ("::1",)
    return (str(unmap(a)),)


def serves(s: Socket, dest: str) -> bool:
    """Whether a listening socket receives a connection to ``dest`` (same port assumed).

    A wildcard receives its own family; ``::`` receives IPv4 too unless IPV6_V6ONLY is set
    (Linux default net.ipv6.bindv6only = 0, so unknown counts as dual-stack).
    """
    d, bound = ip(dest), ip(s.local_addr)
    if d is None or bound is None:
        return False
    d, local = unmap(d), unmap(bound)
    if local.is_unspecified:
        if local.version == 4:
            return d.version == 4
        return d.version == 6 or s.v6only is not True
    return local == d


def owners_text(x: Listener) -> str:
    if not x.owners:
        return f"owner unknown: {x.owner_hint}" if x.owner_hint else "owner unknown"
    return ", ".join(f"{o.name} pid {o.pid}" for o in x.owners)


def listener_line(x: Listener) -> str:
    line = f"{x.proto} {host_port(x.address, x.port)}  {x.exposure}  {owners_text(x)}"
    cmd = x.owners[0].command if x.owners else ""
    if cmd:
        line += f": {cmd if len(cmd) <= 80 else cmd[:79] + '…'}"
    if x.notes:
        line += f"  ({'; '.join(x.notes)})"
    return line


def address_lines(p: Parsed, f: Facts) -> tuple[str, ...]:
    from homeport.explain.rules import ADDRESS_NOTES

    if p.host is None:
        return ("the text names no address: loopback (127.0.0.1 and ::1) is assumed",)
    cls = address_class(p.host)
    out = [f"{p.host}: {ADDRESS_NOTES[cls]}"]
    a = ip(p.host)
    if a is not None:
        out.append(f"family: IPv{unmap(a).version}")
    if a is not None and cls == "loopback" and a.version == 4 and str(a) != "127.0.0.1":
        out.append(
            "Linux routes all of 127.0.0.0/8 to lo, so it works here; macOS and the BSDs"
            " configure only 127.0.0.1 (add it with `ifconfig lo0 alias`). A server on"
            " 127.0.0.1 does not answer on it."
        )
    if p.name:
        out.append(f"the program was given the name {p.name!r} and tried {p.host}")
    if f.resolution is not None:
        out.append(f"{f.resolution.name} resolves here to: {f.resolution.text()}")
        if f.resolution.name.endswith(".localhost"):
            out.append(
                "*.localhost is loopback by RFC 6761 §6.3; browsers resolve it themselves,"
                " other programs ask the system resolver"
            )
    out += f.homeport_names
    if f.resolution is None or f.resolution.name != "localhost":
        out.append(f"localhost resolves here to: {f.localhost.text()}")
    return tuple(out)


def port_lines(p: Parsed, f: Facts) -> tuple[str, ...]:
    if p.port is None:
        return ("the text names no port",)
    port = p.port
    name = f" (usually {f.service})" if f.service else ""
    out = [f"{port}: {_PORT_CLASS[port_class(port)]}{name}"]
    if p.port_assumed:
        out.insert(0, f"the text names no port: {port} is the tool's default, assumed here")
    if needs_privilege(port, f.unprivileged_start):
        out.append(
            f"binding it needs root or CAP_NET_BIND_SERVICE here (unprivileged ports start"
            f" at {f.unprivileged_start})"
        )
    else:
        out.append(
            f"any user may bind it here (unprivileged ports start at {f.unprivileged_start})"
        )
    lo, hi = f.ephemeral
    if in_range(port, f.ephemeral):
        out.append(
            f"inside this machine's ephemeral range {lo}-{hi}: the kernel hands it out as the"
            " source port of outgoing connections and to bind(0) servers, so it may be a"
            " client's port, and a fixed server port here can collide at random"
            " (pick one outside: `homeport port`)"
        )
    else:
        out.append(f"outside the ephemeral range {lo}-{hi}: a good place for a fixed server port")
    return tuple(out)


def live_lines(p: Parsed, f: Facts, dests: tuple[str, ...]) -> tuple[str, ...]:
    if p.port is None and p.path is not None and f.unix_socket is not None:
        says = {True: "a server listens on it", False: "no server listens on it", None: "unknown"}
        return (f"{p.path}: {f.unix_socket}", says[f.unix_listening])
    if p.port is None:
        return ("no port, so nothing to look up",)
    out = [listener_line(x) for x in f.listeners]
    if not f.listeners:
        out.append(f"nothing listens on port {p.port} (TCP or UDP, IPv4 or IPv6)")
    tcp = [x for x in f.listeners if x.proto == "tcp"]
    for d in dests:
        hits = [x for x in tcp if serves(x.socket, d)]
        where = host_port(d, p.port)
        if hits:
            out.append(f"a TCP connection to {where} reaches {host_port(hits[0].address, p.port)}")
        else:
            out.append(f"a TCP connection to {where} would be refused: nothing receives it")
    if f.time_wait:
        out.append(
            f"{f.time_wait} TCP connection(s) on port {p.port} in TIME-WAIT (recently closed)"
        )
    out.extend(f"firewall: {r}" for r in f.firewall_lo)
    if f.firewall_note:
        out.append(f"firewall not read: {f.firewall_note}")
    return tuple(out)
