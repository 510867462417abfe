"""Records and pure parsers for the doctor: the facts it gathers and the checks it returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from homeport.doctor.firewall import FirewallReading
from homeport.explain.facts import Resolution

Status = Literal["ok", "warn", "fail", "skip"]
STATUS_ORDER: dict[Status, int] = {"ok": 0, "skip": 1, "warn": 2, "fail": 3}

#: Ports dev tools use by default; one inside the ephemeral range can be taken at random.
DEV_PORTS: tuple[int, ...] = (
    3000,
    3001,
    4200,
    5000,
    5173,
    5432,
    6379,
    8000,
    8080,
    8443,
    8888,
    9000,
    9229,
    27017,
    62893,
)
HOME_PORT = 62893


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    title: str
    status: Status
    summary: str
    detail: tuple[str, ...] = ()
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "summary": self.summary,
            "detail": list(self.detail),
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class LoopbackFacts:
    exists: bool = True
    up: bool | None = True
    ipv4: tuple[str, ...] = ("127.0.0.1",)
    ipv6: tuple[str, ...] = ("::1",)
    #: net.ipv6.conf.lo.disable_ipv6; None when the kernel has no IPv6.
    ipv6_disabled: bool | None = False


@dataclass(frozen=True, slots=True)
class LoopbackListener:
    """A TCP listener on a loopback address (or wildcard), reduced to what the checks need."""

    port: int
    address: str
    owner: str | None = None
    v6only: bool | None = None


@dataclass(frozen=True, slots=True)
class TlsStore:
    """One trust store as ``homeport trust --status`` checked it (by verifying a leaf)."""

    id: str
    trusted: bool | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TlsFacts:
    """The local HTTPS CA: whether it exists, its key's mode, expiry dates, trust per store.
    The default is a machine where HTTPS was never used: no CA, nothing to check."""

    ca_cert: str = ""
    exists: bool = False
    key_mode: int | None = None
    #: ISO 8601 UTC times, so the record stays free of datetime parsing for the checks.
    now: str = ""
    ca_not_after: str = ""
    #: (leaf key, not_after) of every cached leaf.
    leaves: tuple[tuple[str, str], ...] = ()
    stores: tuple[TlsStore, ...] = ()
    #: Commands that finish the stores that do not trust the CA.
    commands: tuple[str, ...] = ()
    #: Why the CA could not be read, when it could not.
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DoctorFacts:
    loopback: LoopbackFacts = field(default_factory=LoopbackFacts)
    hosts_text: str | None = "127.0.0.1 localhost\n::1 localhost\n"
    localhost: Resolution = field(
        default_factory=lambda: Resolution("localhost", ("::1", "127.0.0.1"))
    )
    subdomain: Resolution = field(
        default_factory=lambda: Resolution("homeport-doctor.localhost", ("127.0.0.1",))
    )
    ephemeral: tuple[int, int] = (32768, 60999)
    reserved_ports: str = ""
    unprivileged_start: int = 1024
    can_bind_privileged: bool = False
    #: ``homeport-*.socket`` system units (``homeport service install --ports``) found.
    port_units: tuple[str, ...] = ()
    firewall: FirewallReading = field(default_factory=lambda: FirewallReading("ok", "nft"))
    #: TCP sockets in TIME-WAIT (``tw`` in /proc/net/sockstat); None when unknown.
    time_wait: int | None = 0
    #: The destination (host:port) with the most TIME-WAIT sockets, and how many: each one
    #: holds a source port toward that destination, so this is what runs out first.
    time_wait_top: tuple[str, int] | None = None
    listeners: tuple[LoopbackListener, ...] = ()
    #: Who holds homeport's home port (None when free).
    home_owner: str | None = None
    tls: TlsFacts = field(default_factory=TlsFacts)
    #: /etc/nsswitch.conf (None: unreadable or absent, as on macOS).
    nsswitch_text: str | None = "hosts: files dns\n"
    #: The hosts file homeport manages ($HOMEPORT_HOSTS_FILE, default /etc/hosts) and the
    #: (name, address) pairs its block should hold now; None when unknown.
    managed_hosts_text: str | None = "127.0.0.1 localhost\n"
    hosts_wanted: tuple[tuple[str, str], ...] | None = ()


@dataclass(frozen=True, slots=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def status(self) -> Status:
        return max((c.status for c in self.checks), key=STATUS_ORDER.__getitem__, default="ok")

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in STATUS_ORDER}

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "counts": self.counts(),
            "checks": [c.to_json() for c in self.checks],
        }


# ---------------------------------------------------------------- pure parsers


def parse_hosts(text: str) -> dict[str, list[str]]:
    """``/etc/hosts``: name -> addresses in file order (hosts(5); '#' starts a comment)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        for name in fields[1:]:
            out.setdefault(name.lower(), []).append(fields[0])
    return out


def parse_port_list(text: str) -> set[int]:
    """``ip_local_reserved_ports``: ``8080,9000-9010``."""
    ports: set[int] = set()
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            ports.update(range(int(lo), int(hi or lo) + 1))
    return ports


def parse_sockstat_tw(text: str) -> int | None:
    """``TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 1`` -> 2 (net/ipv4/proc.c sockstat_seq_show)."""
    for line in text.splitlines():
        if line.startswith("TCP:"):
            words = line.split()
            if "tw" in words:
                i = words.index("tw")
                if i + 1 < len(words) and words[i + 1].isdigit():
                    return int(words[i + 1])
    return None
