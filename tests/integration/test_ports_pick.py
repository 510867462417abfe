"""Picking against real sockets: blind spots, leases across processes, reservations."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from homeport.errors import NotFound
from homeport.ports import lease as lease_module
from homeport.ports import pick_ports, reserve_port
from homeport.ports.lease import LeaseStore
from homeport.ports.pick import bind_free, inventory_holds


def only(port: int) -> tuple[int, int]:
    return (port, port)


def picks(port: int, lease_dir: Path) -> bool:
    """Whether a picker restricted to exactly ``port`` hands it out."""
    try:
        pick_ports(1, port_range=only(port), lease_dir=lease_dir)
    except NotFound:
        return False
    return True


def picks_eventually(port: int, lease_dir: Path) -> bool:
    """The control side: pickers in parallel tests (other lease dirs) bind-test numbers
    for microseconds, which can make one attempt see a free port busy. Bounded retry."""
    return any(picks(port, lease_dir / str(i)) for i in range(50))


@pytest.fixture
def held() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for s in socks:
        s.close()


def bound(held: list[socket.socket], family: int, addr: str, port: int, kind: int) -> None:
    s = socket.socket(family, kind)
    held.append(s)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    if kind == socket.SOCK_STREAM:
        s.listen()


@pytest.mark.parametrize(
    ("family", "addr", "kind"),
    [
        (socket.AF_INET6, "::1", socket.SOCK_STREAM),
        (socket.AF_INET, "127.0.0.2", socket.SOCK_STREAM),
        (socket.AF_INET, "0.0.0.0", socket.SOCK_STREAM),
        (socket.AF_INET, "127.0.0.1", socket.SOCK_DGRAM),
        (socket.AF_INET6, "::1", socket.SOCK_DGRAM),
    ],
    ids=["tcp-v6-loopback-only", "tcp-127.0.0.2-only", "tcp-wildcard-v4", "udp-v4", "udp-v6"],
)
def test_blind_spots_are_never_handed_out(
    held: list[socket.socket],
    free_port: int,
    tmp_path: Path,
    family: int,
    addr: str,
    kind: int,
) -> None:
    assert picks_eventually(free_port, tmp_path / "control")  # the number is pickable
    bound(held, family, addr, free_port, kind)
    assert not picks(free_port, tmp_path / "leases")
    held.pop().close()
    assert picks_eventually(free_port, tmp_path / "after")


def test_time_wait_remnant_is_never_handed_out(free_port: int, tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", free_port))
    client = socket.create_connection(("127.0.0.1", free_port))
    conn, _ = listener.accept()
    conn.close()  # the server side closes first: its socket on free_port enters TIME-WAIT
    client.recv(1)
    client.close()
    listener.close()
    out = subprocess.run(
        ["ss", "-tan", "state", "time-wait", f"sport = :{free_port}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert f":{free_port}" in out, "the test needs a TIME-WAIT socket to exist"
    assert not bind_free(free_port)
    assert not picks(free_port, tmp_path)


def test_a_leased_port_is_not_handed_out_while_its_holder_lives(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
            import sys
            from pathlib import Path
            from homeport.ports import free_port
            print(free_port(port_range=(21000, 21031), lease_dir=Path(sys.argv[1])), flush=True)
            sys.stdin.read()
        """),
            str(tmp_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        port = int(holder.stdout.readline())
        assert bind_free(port)  # nothing is bound: only the lease protects it
        # Take every port the range still gives, one pick at a time: parallel tests may hold
        # a few of these numbers themselves, so asking for all 31 at once could fail.
        mine: list[int] = []
        for _ in range(32):
            try:
                mine += [
                    x.port for x in pick_ports(1, port_range=(21000, 21031), lease_dir=tmp_path)
                ]
            except NotFound:
                break
        assert len(mine) >= 16, f"the range was mostly busy: {mine}"
        assert port not in mine
    finally:
        holder.communicate("", timeout=10)
    assert picks_eventually(port, tmp_path)  # the holder exited: its lease no longer binds


STRESS = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from homeport.ports import free_port
    lo, hi = int(sys.argv[2]), int(sys.argv[3])
    got = [free_port(port_range=(lo, hi), lease_dir=Path(sys.argv[1])) for _ in range(500)]
    print(json.dumps(got), flush=True)
    sys.stdin.read()  # hold the leases until the test lets go
""")


def test_parallel_pickers_never_share_a_port(tmp_path: Path) -> None:
    # 8 x 500 picks from a range only a little larger than 4,000: without leases,
    # parallel pickers would collide constantly.
    lo, hi = 12000, 16499
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STRESS, str(tmp_path), str(lo), str(hi)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    try:
        got = [json.loads(p.stdout.readline()) for p in procs if p.stdout is not None]
    finally:
        for p in procs:
            p.communicate("", timeout=30)
    flat = [port for ports in got for port in ports]
    assert len(flat) == 4000
    assert len(set(flat)) == 4000, "a port was handed to two live holders"
    assert all(lo <= port <= hi for port in flat)
    # The holders have exited: their ports are free again. Only ~500 numbers of the
    # range were never leased, so 4,000 more picks succeed only by reclaiming.
    again = pick_ports(4000, port_range=(lo, hi), lease_dir=tmp_path)
    assert len({lease.port for lease in again} & set(flat)) >= 3400


def test_reserve_port_holds_a_listening_socket(tmp_path: Path) -> None:
    with reserve_port(lease_dir=tmp_path) as r:
        assert r.socket.getsockname() == ("127.0.0.1", r.port)
        client = socket.create_connection(("127.0.0.1", r.port), timeout=2)
        conn, _ = r.socket.accept()
        conn.close()
        client.close()
        assert LeaseStore(tmp_path).read(r.port) is not None
        assert not picks(r.port, tmp_path / "other")  # bound: busy for everyone
    assert LeaseStore(tmp_path).read(r.port) is None  # released on exit


def test_reserve_port_can_be_handed_to_a_child(tmp_path: Path) -> None:
    child_code = (
        "import socket,sys; s=socket.socket(fileno=int(sys.argv[1])); "
        "c,_=s.accept(); c.sendall(b'hi from child'); c.close()"
    )
    with reserve_port(lease_dir=tmp_path) as r:
        child = subprocess.Popen(
            [sys.executable, "-c", child_code, str(r.fileno())], pass_fds=[r.fileno()]
        )
        try:
            with socket.create_connection(("127.0.0.1", r.port), timeout=5) as c:
                assert c.recv(100) == b"hi from child"
        finally:
            child.wait(timeout=10)
    assert child.returncode == 0


def test_named_port_is_stable_across_processes(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from homeport.ports import free_port; "
        "print(free_port('api', lease_dir=Path(sys.argv[1])))"
    )
    run = [sys.executable, "-c", code, str(tmp_path)]
    first = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    second = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert first == second
    assert os.path.exists(tmp_path)


def test_plugin_fixtures_are_distinct_across_xdist_workers(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "test_many.py").write_text(
        textwrap.dedent(f"""
        import os, pytest
        @pytest.mark.parametrize("n", range(12))
        def test_pick(n, free_port, free_port_factory):
            ports = [free_port] + [free_port_factory() for _ in range(5)]
            path = os.path.join({str(out)!r}, f"{{os.getpid()}}-{{n}}")
            with open(path, "w") as f:
                f.write(" ".join(map(str, ports)))
    """)
    )
    env = {**os.environ, "HOMEPORT_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            "4",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path / "test_many.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=100,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = list(out.iterdir())
    assert len({f.name.split("-")[0] for f in files}) > 1, "expected several workers"
    ports = [int(p) for f in files for p in f.read_text().split()]
    assert len(ports) == 72
    assert len(set(ports)) == 72


def test_inventory_second_opinion_sees_a_listener(free_port: int, tmp_path: Path) -> None:
    assert not inventory_holds(free_port)
    with socket.create_server(("::1", free_port), family=socket.AF_INET6):
        assert inventory_holds(free_port)
        with pytest.raises(NotFound):
            pick_ports(1, port_range=only(free_port), lease_dir=tmp_path, inventory=True)


def test_deleted_state_dir_is_noticed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lease_module, "_RECHECK", 0.0)  # check the path on every use
    first = pick_ports(1, lease_dir=tmp_path)[0].port
    shutil.rmtree(tmp_path)
    second = pick_ports(1, lease_dir=tmp_path)[0].port
    # Read the file at the path itself: the new lease is there, not in the deleted file.
    data = (tmp_path / lease_module.LEASE_FILE).read_bytes()
    size = lease_module.RECORD_SIZE
    record = lease_module.decode(data[second * size : (second + 1) * size])
    assert record is not None
    assert record.port == second
    assert first == second or not data[first * size : (first + 1) * size].strip(b"\0 ")


def test_lease_descriptors_stay_bounded(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for i in range(30):
        pick_ports(1, lease_dir=tmp_path / str(i))
    assert len(os.listdir("/proc/self/fd")) - before <= lease_module._MAX_OPEN


def test_plugin_falls_back_to_the_temp_dir_when_home_is_unwritable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from homeport import pytest_plugin

    # A path under a character device can never be created, even by root.
    monkeypatch.setattr(pytest_plugin, "_LEASE_DIR", [Path("/dev/null/state/leases")])
    port = pytest_plugin._pick()
    fallback = pytest_plugin._LEASE_DIR[0]
    assert fallback.parent == Path(tempfile.gettempdir())
    lease = LeaseStore(fallback).read(port)
    assert lease is not None
    assert lease.holder.pid == os.getpid()
