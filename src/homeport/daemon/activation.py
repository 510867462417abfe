"""Socket activation the systemd way (sd_listen_fds(3)): listening sockets handed to the
gateway instead of bound by it.

The protocol: ``LISTEN_PID`` is the PID the sockets are meant for (so a child that inherits the
environment does not take them), ``LISTEN_FDS`` how many there are, starting at fd 3
(``SD_LISTEN_FDS_START``), in the order the socket unit lists them; ``LISTEN_FDNAMES``
(optional) names them, colon-separated (``FileDescriptorName=``). The variables are removed
from the environment whether or not they were for us, so no service the daemon starts
inherits them, and the fds get ``FD_CLOEXEC`` so no child inherits the sockets either.

This is how ``homeport service install --ports 80,443`` hands ports 80 and 443, bound by a
system socket unit as root, to a gateway running as the user.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import NamedTuple

from homeport.errors import UsageError

LISTEN_FDS_START = 3
_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


@dataclass(frozen=True, slots=True)
class Passed:
    """One passed fd and its name (``unknown`` when the manager gave none, as systemd does)."""

    fd: int
    name: str


def passed_fds(environ: MutableMapping[str, str], pid: int) -> list[Passed]:
    """The fds passed to process ``pid`` per ``environ``; the variables are removed from it.
    Empty when nothing was passed or it was passed to another process. Raises UsageError
    when the variables are malformed (the supervisor's configuration is wrong)."""
    values = {k: environ.pop(k) for k in _VARS if k in environ}
    if "LISTEN_FDS" not in values:
        return []
    pid_text = values.get("LISTEN_PID", "")
    if not pid_text.isdigit() or not values["LISTEN_FDS"].isdigit():
        raise UsageError(
            f"bad socket activation: LISTEN_PID={pid_text!r} LISTEN_FDS={values['LISTEN_FDS']!r}",
            hint="both must be decimal numbers (sd_listen_fds(3))",
        )
    if int(pid_text) != pid:
        return []
    count = int(values["LISTEN_FDS"])
    names = values.get("LISTEN_FDNAMES", "").split(":") if values.get("LISTEN_FDNAMES") else []
    return [
        Passed(fd, names[i] if i < len(names) and names[i] else "unknown")
        for i, fd in enumerate(range(LISTEN_FDS_START, LISTEN_FDS_START + count))
    ]


class PassedSocket(NamedTuple):
    sock: socket.socket
    #: From LISTEN_FDNAMES: ``http``/``https`` for the units ``service install --ports``
    #: writes (``https`` is where TLS belongs), else ``unknown``.
    name: str


def listen_sockets(environ: MutableMapping[str, str] | None = None) -> list[PassedSocket]:
    """The listening TCP sockets passed to this process, each marked close-on-exec; [] when
    the gateway should bind its own. A passed fd that is not a listening TCP socket is a
    configuration error (UsageError), not something to serve on."""
    env = os.environ if environ is None else environ
    found = passed_fds(env, os.getpid())
    out: list[PassedSocket] = []
    for p in found:
        try:
            os.set_inheritable(p.fd, False)
            sock = socket.socket(fileno=p.fd)
        except OSError as exc:
            raise UsageError(f"socket activation: fd {p.fd} ({p.name}) is not a socket") from exc
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        inet = sock.family in (socket.AF_INET, socket.AF_INET6)
        if sock.type != socket.SOCK_STREAM or not inet or not listening:
            sock.detach()  # not ours to close
            raise UsageError(
                f"socket activation: fd {p.fd} ({p.name}) is not a listening TCP socket",
                hint="the socket unit needs ListenStream=ADDRESS:PORT",
            )
        out.append(PassedSocket(sock, p.name))
    return out


def main_port(passed: list[PassedSocket]) -> int:
    """The port the gateway's URLs name: the lowest among the passed sockets (80 before 443)."""
    return min(int(p.sock.getsockname()[1]) for p in passed)
