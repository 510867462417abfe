"""The diagnosis table: parsed input + hand-built facts -> situation and its advice."""

from __future__ import annotations

import pytest

from homeport.addr import exposure
from homeport.explain import Facts, Resolution, parse_input
from homeport.explain.diagnose import conflicts, diagnose
from homeport.explain.sections import serves
from homeport.model import Listener, Process, Socket


def lst(
    addr: str,
    port: int,
    *,
    proto: str = "tcp",
    v6only: bool | None = None,
    owner: str | None = "node",
    pid: int = 4242,
    cmd: tuple[str, ...] = (),
) -> Listener:
    fam = 6 if ":" in addr else 4
    state = "LISTEN" if proto == "tcp" else "UNCONN"
    sock = Socket(proto, fam, addr, port, "", 0, state, 1000 + port, v6only=v6only)  # type: ignore[arg-type]
    owners = (Process(pid, owner, cmd or (owner,)),) if owner else ()
    return Listener(sock, exposure(addr), owners, "known" if owner else "permission-denied")


V4_ONLY = Resolution("localhost", ("127.0.0.1",))
BOTH_V6_FIRST = Resolution("localhost", ("::1", "127.0.0.1"))


def facts(*listeners: Listener, port: int | None = 3000, **kw: object) -> Facts:
    return Facts(port=port, listeners=tuple(listeners), **kw)  # type: ignore[arg-type]


CASES = [
    # (id, input, facts, expected situation, substrings expected in summary+steps)
    (
        "node-v6-vs-v4",
        "connect ECONNREFUSED ::1:3000",
        facts(lst("127.0.0.1", 3000)),
        "refused.family",
        [
            "listens on IPv4 only",
            "pid 4242",
            "server.listen(3000, '::')",
            "--dns-result-order=ipv4first",
        ],
    ),
    (
        "v4-vs-v6-listener",
        "curl: (7) Failed to connect to 127.0.0.1 port 5173 after 0 ms: Couldn't connect to server",
        facts(lst("::1", 5173, cmd=("node", "/app/node_modules/.bin/vite")), port=5173),
        "refused.family",
        ["IPv6 only", "vite --host", "connect to [::1]:5173"],
    ),
    (
        "nothing",
        "connect ECONNREFUSED 127.0.0.1:3000",
        facts(),
        "refused.nothing",
        ["Nothing listens on port 3000", "homeport wait 127.0.0.1:3000"],
    ),
    (
        "udp-only",
        "connect ECONNREFUSED 127.0.0.1:3000",
        facts(lst("127.0.0.1", 3000, proto="udp")),
        "refused.udp-only",
        ["only UDP"],
    ),
    (
        "listening-now",
        "connect ECONNREFUSED 127.0.0.1:3000",
        facts(lst("0.0.0.0", 3000)),
        "refused.listening-now",
        ["listens on 127.0.0.1:3000 now"],
    ),
    (
        "other-loopback",
        "connect ECONNREFUSED 127.0.0.1:3000",
        facts(lst("127.0.0.2", 3000)),
        "refused.other-address",
        ["not on 127.0.0.1"],
    ),
    (
        "localhost-partial",
        "curl: (7) Failed to connect to localhost port 3000 after 0 ms: Couldn't connect to server",
        facts(lst("127.0.0.1", 3000), resolution=BOTH_V6_FIRST),
        "refused.partial",
        ["::1, 127.0.0.1", "The first address, ::1"],
    ),
    (
        "no-address",
        "ConnectionRefusedError: [Errno 111] Connection refused",
        facts(port=None),
        "refused.no-address",
        ["--at HOST:PORT"],
    ),
    (
        "dual-stack-serves-v4",
        "connect ECONNREFUSED 127.0.0.1:3000",
        facts(lst("::", 3000, v6only=False)),
        "refused.listening-now",
        [],
    ),
    (
        "v6only-wildcard-not-v4",
        "connect ECONNREFUSED 127.0.0.1:3000",
        facts(lst("::", 3000, v6only=True)),
        "refused.family",
        [],
    ),
    (
        "in-use-held",
        "Error: listen EADDRINUSE: address already in use :::3000",
        facts(lst("127.0.0.1", 3000, owner="python3", pid=77)),
        "in-use.held",
        ["python3 (pid 77)", "homeport kill 3000"],
    ),
    (
        "in-use-unknown-owner",
        "Error: listen EADDRINUSE: address already in use 127.0.0.1:3000",
        facts(lst("0.0.0.0", 3000, owner=None)),
        "in-use.held-unknown",
        ["sudo homeport who 3000"],
    ),
    (
        "in-use-time-wait",
        "Error: listen EADDRINUSE: address already in use 127.0.0.1:3000",
        facts(time_wait=3),
        "in-use.time-wait",
        ["3 connection(s)", "SO_REUSEADDR"],
    ),
    (
        "in-use-gone",
        "Error: listen EADDRINUSE: address already in use 127.0.0.1:3000",
        facts(lst("::1", 3000)),
        "in-use.gone",
        [],
    ),
    (
        "in-use-no-port",
        "OSError: [Errno 98] Address already in use",
        facts(port=None),
        "in-use.no-port",
        ["--at :PORT"],
    ),
    (
        "eacces-80",
        "Error: listen EACCES: permission denied 0.0.0.0:80",
        facts(port=80),
        "permission.privileged",
        ["below 1024", "8080", "ip_unprivileged_port_start=80", "cap_net_bind_service"],
    ),
    (
        "eacces-high",
        "Error: listen EACCES: permission denied 0.0.0.0:8080",
        facts(port=8080),
        "permission.unprivileged-port",
        ["SELinux"],
    ),
    (
        "eacces-lowered-start",
        "Error: listen EACCES: permission denied 0.0.0.0:443",
        facts(port=443, unprivileged_start=80),
        "permission.unprivileged-port",
        [],
    ),
    (
        "not-local",
        "Error: listen EADDRNOTAVAIL: address not available 192.0.2.99:3000",
        facts(bindable=False),
        "not-available.not-local",
        ["not an address of this machine"],
    ),
    (
        "ipv6-off",
        "Error: listen EADDRNOTAVAIL: address not available ::1:3000",
        facts(ipv6_lo=False, bindable=False),
        "not-available.ipv6-off",
        ["disable_ipv6=0"],
    ),
    (
        "bindable-now",
        "Error: connect EADDRNOTAVAIL 127.0.0.1:3000",
        facts(bindable=True),
        "not-available.bindable-now",
        ["source port", "ip_local_port_range"],
    ),
    (
        "timeout-lo",
        "curl: (28) Failed to connect to 127.0.0.1 port 3000 after 1001 ms: Timeout was reached",
        facts(firewall_lo=("nft inet t in: iif lo tcp dport 3000 drop",)),
        "timeout.loopback",
        ["iif lo tcp dport 3000 drop", "homeport doctor"],
    ),
    (
        "timeout-remote",
        "Error: connect ETIMEDOUT 10.0.0.5:5432",
        facts(port=5432),
        "timeout.remote",
        ["10.0.0.5 did not answer"],
    ),
    (
        "sub-localhost",
        "Error: getaddrinfo ENOTFOUND api.localhost",
        facts(port=None, resolution=Resolution("api.localhost", (), "Name or service not known")),
        "not-found.localhost-subdomain",
        ["RFC 6761", "nss-myhostname", "127.0.0.1 api.localhost"],
    ),
    (
        "localhost-missing",
        "Error: getaddrinfo ENOTFOUND localhost",
        facts(port=None, resolution=Resolution("localhost", (), "Name or service not known")),
        "not-found.localhost",
        ["127.0.0.1 localhost"],
    ),
    (
        "resolves-now",
        "Error: getaddrinfo ENOTFOUND db.internal",
        facts(port=None, resolution=Resolution("db.internal", ("10.1.2.3",))),
        "not-found.resolves-now",
        ["10.1.2.3"],
    ),
    (
        "vm-gone",
        "Disconnected from the target VM, address: '127.0.0.1:62893', transport: 'socket'",
        facts(port=62893),
        "vm-disconnected.gone",
        ["address=127.0.0.1:62893"],
    ),
    (
        "vm-listening",
        "Disconnected from the target VM, address: '127.0.0.1:5005', transport: 'socket'",
        facts(lst("127.0.0.1", 5005, owner="java"), port=5005),
        "vm-disconnected.listening",
        ["java"],
    ),
    ("address-served", "127.0.0.1:3000", facts(lst("0.0.0.0", 3000)), "address.listening", []),
    ("address-free", "[::1]:5432", facts(port=5432), "address.not-listening", []),
    (
        "address-localhost-v6-server",
        "localhost:5173",
        facts(lst("::1", 5173), port=5173, resolution=V4_ONLY),
        "address.family",
        ["goes to 127.0.0.1 (IPv4) here", "IPv6 only", "connect to [::1]:5173"],
    ),
    (
        "address-other-loopback",
        "127.0.0.1:80",
        facts(lst("127.0.0.2", 80), port=80),
        "address.other-address",
        ["not on 127.0.0.1"],
    ),
    (
        "address-localhost-partial",
        "localhost:3000",
        facts(lst("127.0.0.1", 3000), resolution=BOTH_V6_FIRST),
        "refused.partial",
        [],
    ),
]


@pytest.mark.parametrize(
    ("text", "f", "sid", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_situation(text: str, f: Facts, sid: str, says: list[str]) -> None:
    e = diagnose(parse_input(text), f)
    assert e.diagnosis[0].id == sid
    said = "\n".join([e.diagnosis[0].summary, *e.diagnosis[0].detail, *e.next_steps])
    for s in says:
        assert s in said, (s, said)
    assert "{" not in said  # every placeholder filled


def test_json_shape_is_stable() -> None:
    e = diagnose(parse_input("connect ECONNREFUSED ::1:3000"), facts(lst("127.0.0.1", 3000)))
    j = e.to_json()
    assert list(j) == [
        "input",
        "kind",
        "error",
        "target",
        "address",
        "port",
        "live",
        "diagnosis",
        "did_you_mean",
        "next_steps",
    ]
    assert j["error"] == {
        "rule": "node-connect-refused",
        "tool": "node",
        "kind": "refused",
        "meaning": j["error"]["meaning"],
        "evidence": None,
    }
    assert j["target"] == {
        "host": "::1",
        "name": None,
        "port": 3000,
        "path": None,
        "port_assumed": False,
    }
    assert j["live"]["destinations"] == ["::1"]
    assert j["live"]["serving"] == []
    assert j["live"]["listeners"][0]["pids"] == [4242]


def test_sections_name_classes_and_ranges() -> None:
    e = diagnose(parse_input("127.0.0.2:80"), facts(port=80, ephemeral=(32768, 60999)))
    text = "\n".join(e.address + e.port)
    assert "127.0.0.0/8" in text
    assert "macOS" in text
    assert "needs root or CAP_NET_BIND_SERVICE" in text
    e = diagnose(parse_input("127.0.0.1:40000"), facts(port=40000, ephemeral=(32768, 60999)))
    assert any("inside this machine's ephemeral range 32768-60999" in x for x in e.port)
    e = diagnose(parse_input("0.0.0.0:8000"), facts(lst("127.0.0.1", 8000), port=8000))
    assert any("unspecified" in x for x in e.address)
    assert e.destinations == ("127.0.0.1",)
    assert e.diagnosis[0].id == "address.listening"


@pytest.mark.parametrize(
    ("listener", "dest", "expected"),
    [
        (lst("0.0.0.0", 1), "127.0.0.1", True),
        (lst("0.0.0.0", 1), "::1", False),
        (lst("::", 1, v6only=False), "127.0.0.1", True),
        (lst("::", 1, v6only=None), "127.0.0.1", True),
        (lst("::", 1, v6only=True), "127.0.0.1", False),
        (lst("::", 1, v6only=True), "::1", True),
        (lst("127.0.0.1", 1), "127.0.0.2", False),
        (lst("::ffff:127.0.0.1", 1), "127.0.0.1", True),
    ],
)
def test_serves(listener: Listener, dest: str, expected: bool) -> None:
    assert serves(listener.socket, dest) is expected


@pytest.mark.parametrize(
    ("listener", "bind", "expected"),
    [
        (lst("127.0.0.1", 1), "127.0.0.1", True),
        (lst("127.0.0.1", 1), "127.0.0.2", False),
        (lst("127.0.0.1", 1), "0.0.0.0", True),
        (lst("0.0.0.0", 1), "127.0.0.1", True),
        (lst("127.0.0.1", 1), "::1", False),
        (lst("127.0.0.1", 1), "::", True),  # :: is dual-stack by default
        (lst("::", 1, v6only=False), "127.0.0.1", True),
        (lst("::", 1, v6only=True), "127.0.0.1", False),
        (lst("::1", 1), None, True),
    ],
)
def test_bind_conflicts(listener: Listener, bind: str | None, expected: bool) -> None:
    assert conflicts(listener, bind) is expected


NOTE_CASES = [
    (
        "docker-holds-it",
        "Error: listen EADDRINUSE: address already in use :::8080",
        Facts(port=8080, listeners=(lst("0.0.0.0", 8080, owner="docker-proxy"),)),
        ["note.docker"],
        "docker ps --filter publish=8080",
    ),
    (
        "vite-moved",
        "connect ECONNREFUSED 127.0.0.1:5173",
        Facts(port=5173, nearby=(lst("127.0.0.1", 5174),)),
        ["note.nearby"],
        "127.0.0.1:5174",
    ),
    (
        "v6-not-from-here",
        "connect ECONNREFUSED ::1:3000",
        Facts(port=3000, listeners=(lst("127.0.0.1", 3000),), localhost=V4_ONLY),
        ["note.v6-elsewhere", "note.node-order"],
        "a container",
    ),
    (
        "v6-from-here",
        "connect ECONNREFUSED ::1:3000",
        Facts(port=3000, listeners=(lst("127.0.0.1", 3000),), localhost=BOTH_V6_FIRST),
        ["note.node-order"],
        "no longer puts IPv4 first",
    ),
    (
        "in-use-ephemeral",
        "Error: listen EADDRINUSE: address already in use 127.0.0.1:40000",
        Facts(port=40000),
        ["note.ephemeral"],
        "source port",
    ),
    (
        "in-use-fixed",
        "Error: listen EADDRINUSE: address already in use 127.0.0.1:8000",
        Facts(port=8000),
        [],
        "",
    ),
]


@pytest.mark.parametrize(
    ("text", "f", "ids", "says"), [c[1:] for c in NOTE_CASES], ids=[c[0] for c in NOTE_CASES]
)
def test_notes(text: str, f: Facts, ids: list[str], says: str) -> None:
    e = diagnose(parse_input(text), f)
    assert [d.id for d in e.diagnosis[1:]] == ids
    assert says in "\n".join(d.summary + "\n" + "\n".join(d.detail) for d in e.diagnosis)


# ------------------------------------------------------------------ issue 13: Unix sockets


@pytest.mark.parametrize(
    ("listening", "socket", "sid"),
    [
        (None, "it does not exist now", "refused.unix-missing"),
        (False, "a socket, srw-rw----, owner root, group docker", "refused.unix-stale"),
        (True, "a socket, srw-rw----, owner root, group docker", "refused.unix-listening"),
        (None, "a socket, srw-rw----, owner root, group docker", "refused.unix-unknown"),
    ],
)
def test_a_refused_unix_socket_is_told_by_its_file(
    listening: bool | None, socket: str, sid: str
) -> None:
    from homeport.explain.parse import parse_input

    p = parse_input(
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."
        " Is the docker daemon running?"
    )
    assert p.path == "/var/run/docker.sock"
    e = diagnose(p, Facts(unix_socket=socket, unix_listening=listening))
    assert e.diagnosis[0].id == sid
    assert "/var/run/docker.sock" in e.diagnosis[0].summary
    assert e.meaning is not None
    assert "Unix socket" in e.meaning


def test_proc_net_unix_listeners_are_read() -> None:
    from homeport.explain.probes import parse_unix_listeners

    text = (
        "Num       RefCount Protocol Flags    Type St Inode Path\n"
        "0000000000000000: 00000002 00000000 00010000 0001 01 12345 /run/docker.sock\n"
        "0000000000000000: 00000003 00000000 00000000 0001 03 12346 /run/mysqld/mysqld.sock\n"
        "0000000000000000: 00000003 00000000 00000000 0001 03 12347\n"
    )
    assert parse_unix_listeners(text) == frozenset({"/run/docker.sock"})
