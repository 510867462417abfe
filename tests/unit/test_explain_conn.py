"""The connection-level kinds (reset, connect-denied, unreachable): hand-built facts ->
situation and advice, and the pure halves of their probes."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from homeport.addr import exposure
from homeport.explain import Facts, parse_input
from homeport.explain.conn import ago, error_time, unix_path
from homeport.explain.diagnose import diagnose
from homeport.explain.facts import client_spoke_tls
from homeport.explain.probes import (
    cgroup2_mount,
    client_hello,
    is_tls_record,
    query_attr,
    query_count,
)
from homeport.model import Listener, Process, Socket

ERRORS = Path(__file__).parent.parent / "fixtures" / "errors"
NOW = 1_800_000_000.0


def lst(
    addr: str,
    port: int,
    *,
    owner: str = "node",
    cmd: tuple[str, ...] = (),
    started: float | None = NOW - 86_400,
) -> Listener:
    fam = 6 if ":" in addr else 4
    sock = Socket("tcp", fam, addr, port, "", 0, "LISTEN", 1000 + port)  # type: ignore[arg-type]
    proc = Process(4242, owner, cmd or (owner,), start_time=started)
    return Listener(sock, exposure(addr), (proc,), "known")


def facts(*listeners: Listener, port: int | None = 3000, **kw: object) -> Facts:
    return Facts(port=port, listeners=tuple(listeners), now=NOW, **kw)  # type: ignore[arg-type]


def fixture(name: str) -> str:
    return (ERRORS / name).read_text()


RESET = "Error: connect ECONNRESET 127.0.0.1:3000"
STAMP = datetime.fromtimestamp(NOW - 10, UTC).isoformat()  # the error, after the server start
GATEWAY_CMD = ("/usr/bin/python3", "-m", "homeport", "up", "--ready-fd", "5")

CASES = [
    # (id, text, --at, facts, situation, substrings of summary + detail + steps)
    ("reset-no-port", fixture("python_socket_reset.txt"), None, facts(port=None),
     "reset.no-port", ["--at HOST:PORT"]),
    ("reset-gone", RESET, None, facts(), "reset.gone",
     ["Nothing listens on 127.0.0.1:3000 now", "homeport wait 127.0.0.1:3000"]),
    ("reset-gateway-port", fixture("curl_empty_reply.txt"), "127.0.0.1:62893",
     facts(lst("127.0.0.1", 62893, owner="python3"), port=62893), "reset.gateway",
     ["homeport's gateway", "homeport logs --access", "homeport route ls"]),
    ("reset-gateway-cmdline", RESET, None,
     facts(lst("127.0.0.1", 3000, owner="python3", cmd=GATEWAY_CMD)), "reset.gateway", []),
    ("reset-proxy", RESET, None, facts(lst("0.0.0.0", 3000, owner="nginx")), "reset.proxy",
     ["nginx (pid 4242)", "homeport who 3000"]),
    ("reset-tls", fixture("curl_http_to_tls.txt"), "127.0.0.1:3000",
     facts(lst("127.0.0.1", 3000, owner="openssl"), tls=True), "reset.tls",
     ["speaks TLS", "curl -k https://127.0.0.1:3000/"]),
    ("reset-restarted-recently", RESET, None,
     facts(lst("127.0.0.1", 3000, started=NOW - 30)), "reset.recent",
     ["started only 30 s ago", "its log line's timestamp", "homeport wait 127.0.0.1:3000"]),
    ("reset-restarted-after-stamp", "2027-01-15T08:00:00Z " + RESET, None,
     facts(lst("127.0.0.1", 3000, started=datetime(2027, 1, 15, 8, 0, 5, tzinfo=UTC).timestamp())),
     "reset.restarted", []),
    ("reset-up-before-stamp", f"{datetime.fromtimestamp(NOW - 10, UTC).isoformat()} {RESET}",
     None, facts(lst("127.0.0.1", 3000, started=NOW - 60)), "reset.listening",
     ["started 60 s ago", "keep-alive"]),
    ("reset-listening", fixture("requests_reset.txt"), "127.0.0.1:3000",
     facts(lst("::", 3000, owner="python3")), "reset.listening",
     ["started 24 h ago", "SO_LINGER 0", "retry idempotent requests"]),
    ("reset-keepalive", f"{STAMP} {RESET}", None,
     facts(lst("127.0.0.1", 3000), close_wait=("127.0.0.1:53422 (node pid 42)",)),
     "reset.keepalive", ["1 client connection(s) to 127.0.0.1:3000 sit in CLOSE-WAIT",
                         "127.0.0.1:53422 (node pid 42)", "keepAliveTimeout"]),
    ("reset-recent-beats-close-wait", RESET, None,
     facts(lst("127.0.0.1", 3000, started=NOW - 5), close_wait=("127.0.0.1:1 (x pid 1)",)),
     "reset.recent", []),
    ("denied-unix", fixture("node_unix_eacces.txt"), None,
     facts(port=None, unix_socket="a socket, srw-------, owner root, group root"),
     "connect-denied.unix-socket",
     ["/tmp/tmp.t3g0EAYiwY/app.sock is a Unix socket", "srw-------", "usermod -aG docker"]),
    ("denied-docker-socket", "dial unix /var/run/docker.sock: connect: permission denied", None,
     facts(port=None, bpf_hooks=("/x: connect4 (1 program)",)), "connect-denied.unix-socket",
     ["ls -l /var/run/docker.sock", "not examined"]),
    ("denied-bpf", fixture("node_connect_eperm.txt"), None,
     facts(bpf_hooks=("/system.slice/api.service: connect4 (1 program)",)),
     "connect-denied.bpf", ["/system.slice/api.service", "bpftool cgroup tree"]),
    ("denied-selinux", fixture("psql_connect_eacces.txt"), None,
     facts(security=("SELinux enforcing",)), "connect-denied.security",
     ["SELinux enforcing", "semanage port -l | grep 52787"]),
    ("denied-firewall", fixture("redis_cli_connect_eperm.txt"), None,
     facts(firewall_lo=("nft inet t out: oif lo udp dport 53 drop",)), "connect-denied.firewall",
     ["udp dport 53 drop", "sendto()"]),
    ("denied-sandbox", fixture("python_connect_eacces.txt"), None, facts(landlock=7),
     "connect-denied.sandbox", ["Landlock ABI 7 available", "Seccomp"]),
    ("denied-bpf-unread", fixture("python_connect_eperm.txt"), None,
     facts(bpf_note="cgroup BPF hooks not read: needs root (CAP_NET_ADMIN)"),
     "connect-denied.sandbox", ["needs root"]),
    ("unreachable-firewall", fixture("node_unreachable.txt"), None,
     facts(firewall_lo=("nft inet hp in: iif lo tcp dport 52787 reject", "nft x: y drop"),
           firewall_reject=("nft inet hp in: iif lo tcp dport 52787 reject",)),
     "unreachable.firewall", ["port 52787: nft inet hp in: iif lo tcp dport 52787 reject.",
                              "iif lo accept"]),
    ("unreachable-drop-only", fixture("node_unreachable.txt"), None,
     facts(firewall_lo=("nft inet hp in: iif lo tcp dport 6000 drop",)),
     "unreachable.loopback", ["no reject rule for port 52787", "tcp dport 6000 drop"]),
    ("unreachable-loopback", fixture("psql_unreachable.txt"), None, facts(),
     "unreachable.loopback", ["sudo iptables-save"]),
    ("unreachable-remote", "Error: connect EHOSTUNREACH 10.9.8.7:5432", None, facts(),
     "unreachable.remote", ["ip route get 10.9.8.7"]),
    ("unreachable-no-address", fixture("python_unreachable.txt"), None, facts(port=None),
     "unreachable.no-address", ["--at HOST:PORT"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "at", "f", "sid", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_situation(text: str, at: str | None, f: Facts, sid: str, says: list[str]) -> None:
    e = diagnose(parse_input(text, at), f)
    assert e.diagnosis[0].id == sid
    said = "\n".join([e.diagnosis[0].summary, *e.diagnosis[0].detail, *e.next_steps])
    for s in says:
        assert s in said, (s, said)
    assert "{" not in said


def test_keepalive_note_for_pooling_clients_only() -> None:
    up = facts(lst("127.0.0.1", 3000))
    node = diagnose(parse_input(fixture("node_http_hang_up.txt"), "127.0.0.1:3000"), up)
    curl = diagnose(parse_input(fixture("curl_empty_reply.txt"), "127.0.0.1:3000"), up)
    assert [d.id for d in node.diagnosis] == ["reset.listening", "note.keepalive"]
    assert [d.id for d in curl.diagnosis] == ["reset.listening"]


def test_live_lines_say_what_the_probes_found() -> None:
    e = diagnose(parse_input(RESET), facts(lst("127.0.0.1", 3000, started=NOW - 7200), tls=False))
    assert "its owner started 2 h ago" in e.live
    assert "127.0.0.1:3000 does not answer a TLS ClientHello" in e.live
    k = diagnose(parse_input(RESET), facts(lst("127.0.0.1", 3000), close_wait=("1.2.3.4:5 (x)",)))
    assert "client connection in CLOSE-WAIT (closed by the server): 1.2.3.4:5 (x)" in k.live
    d = diagnose(parse_input(fixture("node_connect_eacces.txt")), facts(landlock=None))
    assert "cgroup BPF connect hooks: none" in d.live
    assert "Landlock: not available" in d.live


def test_json_carries_the_probe_results() -> None:
    f = facts(tls=True, bpf_hooks=("/x: connect6 (2 programs)",), security=("s",), landlock=4)
    live = diagnose(parse_input(RESET), f).to_json()["live"]
    assert (live["tls"], live["cgroup_connect_hooks"]) == (True, ["/x: connect6 (2 programs)"])
    assert (live["security_modules"], live["landlock_abi"]) == (["s"], 4)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        # bind()'s PermissionError stays a bind problem; connect()'s is connect-denied
        ("  File 'a.py', line 3\n    s.bind(('127.0.0.1', 80))\nPermissionError: [Errno 13]"
         " Permission denied", "permission"),
        ("    loop.create_connection(...)\nPermissionError: [Errno 13] Permission denied",
         "connect-denied"),
        ("Error: listen EACCES: permission denied 0.0.0.0:80", "permission"),
        ("dial tcp 127.0.0.1:5432: connect: operation not permitted", "connect-denied"),
        ("OSError: [Errno 101] Network is unreachable", "unreachable"),
        ("Error: write EPIPE", "reset"),
        ("net::ERR_EMPTY_RESPONSE", "reset"),
        ("FATAL:  terminating connection due to administrator command\nserver closed the"
         " connection unexpectedly", "reset"),
        ("ECONNRESET", "reset"),
        ("Error: listen EPERM: operation not permitted 0.0.0.0:80", "permission"),
        ("* connect to 127.0.0.1 port 9 failed: Connection refused\n* Failed to connect to"
         " 127.0.0.1 port 9 after 0 ms: Couldn't connect to server", "refused"),
        ('psql: error: connection to server at "127.0.0.1", port 9 failed: Connection refused',
         "refused"),
        ("some tool: connection to 127.0.0.1:9 failed: EPERM", "connect-denied"),
    ],
)  # fmt: skip
def test_kind_of_more_forms(text: str, kind: str) -> None:
    assert parse_input(text).kind == kind


# ------------------------------------------------------------------ pure probe halves


def test_tls_record_header() -> None:
    assert is_tls_record(b"\x16\x03\x03\x00\x7a")  # ServerHello, TLS 1.2 record version
    assert is_tls_record(b"\x15\x03\x01\x00\x02")  # alert
    assert not is_tls_record(b"HTTP/1.1 400 Bad Request")
    assert not is_tls_record(b"")
    assert not is_tls_record(b"\x16\x03")
    assert is_tls_record(client_hello())


def test_client_spoke_tls() -> None:
    assert client_spoke_tls("curl: (35) OpenSSL SSL_connect: SSL_ERROR_SYSCALL")
    assert client_spoke_tls("requests.get('https://127.0.0.1:8443/')")
    assert not client_spoke_tls(fixture("curl_http_to_tls.txt"))


MOUNTINFO = (
    "24 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n"
    "30 24 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755\n"
    "35 30 0:30 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw\n"
)


def test_cgroup2_mount_from_mountinfo() -> None:
    assert cgroup2_mount(MOUNTINFO) == "/sys/fs/cgroup/unified"
    assert cgroup2_mount(MOUNTINFO.splitlines()[0]) is None


def test_bpf_query_attr_layout() -> None:
    attr = query_attr(7, 11)
    assert len(attr) == 64
    assert struct.unpack_from("<IIII", attr) == (7, 11, 0, 0)
    answered = attr[:24] + struct.pack("<I", 3) + attr[28:]
    assert query_count(answered) == 3


def test_error_time() -> None:
    assert (
        error_time("2027-01-15T08:00:00Z boom") == datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()
    )
    assert (
        error_time("[2027-01-15 09:00:00.123+01:00] boom")
        == datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()
    )
    assert error_time("no time here: read ECONNRESET") is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-3, "0 s ago"), (42, "42 s ago"), (600, "10 min ago"), (7200, "2 h ago"),
     (3 * 86400, "3 days ago")],
)  # fmt: skip
def test_ago(seconds: float, text: str) -> None:
    assert ago(seconds) == text


@pytest.mark.parametrize(
    "name",
    [
        "node_unix_eacces.txt",
        "curl_verbose_unix_eacces.txt",
        "psql_unix_eacces.txt",
        "redis_cli_unix_eacces.txt",
    ],
)
def test_unix_path_of_each_captured_text(name: str) -> None:
    path = unix_path(fixture(name))
    assert path is not None
    assert path.startswith("/tmp/tmp.t3g0EAYiwY/")
    assert path.endswith(("app.sock", ".s.PGSQL.5432"))


def test_a_unix_socket_is_not_given_an_ip_address_section() -> None:
    e = diagnose(parse_input(fixture("redis_cli_unix_eacces.txt")), facts(port=None))
    assert e.address == (
        "/tmp/tmp.t3g0EAYiwY/app.sock: a Unix socket, a file in the file system: no IP address"
        " or port",
    )


def test_no_unix_path_in_tcp_texts() -> None:
    assert unix_path(fixture("node_connect_eacces.txt")) is None
    assert unix_path(fixture("curl_verbose_connect_eperm.txt")) is None
