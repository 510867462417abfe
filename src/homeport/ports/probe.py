"""The real probes behind ``wait``: TCP connect, HTTP GET, Unix socket connect.

Each probe returns an :class:`~homeport.ports.wait.Attempt` saying whether the target is
ready and, when not, *why* in words a person can act on: refused, timed out, no route,
self-connect, HTTP 503, TLS error. Nothing here sleeps or loops; :func:`wait_for` does.
"""

from __future__ import annotations

import errno
import http.client
import logging
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from homeport.ports.wait import Attempt, HttpCheck, Probe, WaitTarget, is_self_connect

log = logging.getLogger("homeport.ports.probe")

SockAddr = tuple[str, int] | tuple[str, int, int, int]

#: Most of a body read when looking for ``--contains`` text.
MAX_BODY = 1 << 20


def make_probe(check: HttpCheck) -> Probe:
    def probe(target: WaitTarget, budget: float) -> Attempt:
        if target.kind == "unix":
            return probe_unix(target.path or "", budget)
        if target.kind == "http":
            return probe_http(target, budget, check)
        sock, attempt = connect(target.host, target.port or 0, budget)
        if sock is not None:
            sock.close()
        return attempt

    return probe


def addresses(host: str | None, port: int) -> list[tuple[socket.AddressFamily, SockAddr]]:
    """Every address to try, in resolver order.

    A bare port means this machine. ``localhost`` and ``*.localhost`` always include
    both loopbacks (RFC 6761 §6.3: they are loopback names), whatever /etc/hosts says:
    a server on ::1 only must not be missed because the resolver only knows 127.0.0.1,
    and the reverse.
    """
    loopbacks: list[tuple[socket.AddressFamily, SockAddr]] = [
        (socket.AF_INET6, ("::1", port, 0, 0)),
        (socket.AF_INET, ("127.0.0.1", port)),
    ]
    if host is None:
        return loopbacks
    out: list[tuple[socket.AddressFamily, SockAddr]] = []
    for family, _, _, _, sockaddr in _resolve(host, port):
        entry = (family, sockaddr)
        if family in (socket.AF_INET, socket.AF_INET6) and entry not in out:
            out.append(entry)
    if host.lower().rstrip(".") == "localhost" or host.lower().endswith(".localhost"):
        out += [lb for lb in loopbacks if lb not in out]
    return out


def _resolve(host: str, port: int) -> list[Any]:
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        if host.lower().endswith(".localhost"):
            return []  # the loopbacks are added by the caller
        raise


def show(sockaddr: SockAddr) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect(host: str | None, port: int, budget: float) -> tuple[socket.socket | None, Attempt]:
    """Connect to the first address of ``host`` that accepts, within ``budget`` seconds.

    Returns the connected socket (caller closes it) and an Attempt naming the address
    that answered, or None and the reason each address failed.
    """
    try:
        addrs = addresses(host, port)
    except socket.gaierror as exc:
        return None, Attempt(False, f"cannot resolve {host}: {exc.strerror}")
    deadline = time.monotonic() + budget
    reasons = []
    for family, sockaddr in addrs:
        sock, reason = _connect_one(family, sockaddr, max(0.01, deadline - time.monotonic()))
        if sock is not None:
            attempt = verify_connected(sock)
            if attempt.ok:
                return sock, attempt
            sock.close()
            reason = attempt.reason
        reasons.append(reason)
    return None, Attempt(False, "; ".join(reasons) or f"{host} has no IPv4/IPv6 address")


def _connect_one(
    family: socket.AddressFamily, sockaddr: SockAddr, timeout: float
) -> tuple[socket.socket | None, str]:
    where = show(sockaddr)
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        return None, f"{where}: {_why(exc)}"
    sock.settimeout(timeout)
    try:
        sock.connect(sockaddr)
    except OSError as exc:
        sock.close()
        return None, f"{where}: {_why(exc)}"
    return sock, ""


def _why(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused (nothing listens)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.ENETUNREACH):
        return "wrong family (this address family is not available here)"
    if exc.errno == errno.EHOSTUNREACH:
        return "no route to host"
    return exc.strerror or str(exc)


def verify_connected(sock: socket.socket) -> Attempt:
    """Reject a TCP self-connect: polling a free port can make the kernel connect the
    socket to itself (simultaneous open, RFC 9293 §3.5) when the chosen source port
    equals the target port. A real server never has our own address."""
    local, remote = sock.getsockname(), sock.getpeername()
    where = show(remote)
    if is_self_connect(local, remote):
        return Attempt(False, f"{where}: self-connect (nothing listens; the probe met itself)")
    return Attempt(True, f"{where} accepted", address=where)


def probe_http(target: WaitTarget, budget: float, check: HttpCheck) -> Attempt:
    """GET the URL over a connection to the first address that accepts."""
    deadline = time.monotonic() + budget
    sock, attempt = connect(target.host, target.port or 0, budget)
    if sock is None:
        return attempt
    url = urlsplit(target.url or "")
    conn = http.client.HTTPConnection(target.host or "localhost", target.port, timeout=budget)
    try:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        if url.scheme == "https":
            sock = _tls(sock, target.host or "localhost", check.insecure)
        conn.sock = sock
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        conn.request("GET", path, headers={"User-Agent": "homeport-wait", "Accept": "*/*"})
        resp = conn.getresponse()
        body = resp.read(MAX_BODY) if check.contains else b""
    except ssl.SSLError as exc:
        return Attempt(False, f"{attempt.address}: TLS error: {exc.reason or exc}")
    except (OSError, http.client.HTTPException) as exc:
        return Attempt(False, f"{attempt.address}: HTTP failed: {exc or type(exc).__name__}")
    finally:
        conn.close()
    return _judge(resp.status, body, check, attempt.address)


def _tls(sock: socket.socket, host: str, insecure: bool) -> socket.socket:
    ctx = ssl.create_default_context()
    if insecure:  # dev servers use self-signed certificates; the user opted out
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(sock, server_hostname=host)


def _judge(status: int, body: bytes, check: HttpCheck, address: str | None) -> Attempt:
    lo, hi = check.status
    if not lo <= status <= hi:
        return Attempt(False, f"{address}: HTTP {status} (want {lo}-{hi})", address, status)
    if check.contains is not None and check.contains.encode() not in body:
        return Attempt(
            False, f"{address}: HTTP {status} but body lacks {check.contains!r}", address, status
        )
    return Attempt(True, f"{address}: HTTP {status}", address, status)


def probe_unix(path: str, budget: float) -> Attempt:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(budget)
    try:
        sock.connect(path)
    except FileNotFoundError:
        return Attempt(False, f"unix:{path}: no such socket file yet")
    except ConnectionRefusedError:
        return Attempt(False, f"unix:{path}: refused (socket file exists, nobody accepts)")
    except OSError as exc:
        return Attempt(False, f"unix:{path}: {_why(exc)}")
    finally:
        sock.close()
    return Attempt(True, f"unix:{path} accepted", address=f"unix:{path}")
