"""A loopback socket fixture for benchmarks: many listeners, many established connections.

``socket_fixture()`` starts N child processes (this file run with ``--child``). Each binds
its share of the listeners on port 0 (a quarter on ``::1``, the rest spread over
127.0.0.1-127.0.0.3), then opens its share of client connections to listeners of the
*next* child, so every connection crosses two processes and both of its ends are held by
a real PID (the accepted end too). Every child is stopped by PID and process group when
the context exits, whatever happened; a child also exits when its stdin (a pipe from the
parent) closes, so a parent killed with SIGKILL leaves nothing behind.

Protocol on each child's pipes, one JSON object per line:

    child  -> {"pid": P, "listeners": [[addr, port], ...]}
    parent -> {"connect": [[addr, port], ...], "count": C, "expect": E}
    child  -> {"ready": true, "connected": C, "accepted": E}
    parent closes stdin  -> child exits

Run alone to hold the fixture open for manual poking (Ctrl-C to stop)::

    .venv/bin/python bench/fixture_sockets.py --listeners 2000 --connections 5000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

#: Seconds a child may take to bind, connect and accept before the fixture gives up.
SETUP_TIMEOUT = 60.0
V4_HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


@dataclass(frozen=True, slots=True)
class Fixture:
    """What the fixture holds open: listener (address, port, pid) and connection targets."""

    pids: tuple[int, ...]
    listeners: tuple[tuple[str, int, int], ...]
    #: Listeners that have clients connected to them (address, port, pid).
    targets: tuple[tuple[str, int, int], ...]
    connections: int
    _procs: tuple[subprocess.Popen[str], ...] = field(default=(), repr=False, compare=False)

    def dead(self) -> list[tuple[int, int]]:
        """Children that exited while the fixture was up, as (pid, returncode); a negative
        returncode is the signal that killed it. Measurements taken meanwhile are void."""
        return [(p.pid, p.returncode) for p in self._procs if p.poll() is not None]


# --- child side ------------------------------------------------------------------------


def raise_nofile(needed: int) -> None:
    """Lift RLIMIT_NOFILE to ``needed`` (+ margin); root may also lift the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 64
    if soft >= want:
        return
    if hard != resource.RLIM_INFINITY and hard < want:
        hard = want  # only root may do this; the error below says so otherwise
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def listen_addresses(count: int) -> list[str]:
    """Every 4th listener on ::1, the others cycling over 127.0.0.1-3."""
    out: list[str] = []
    v4 = 0
    for i in range(count):
        if i % 4 == 0:
            out.append("::1")
        else:
            out.append(V4_HOSTS[v4 % len(V4_HOSTS)])
            v4 += 1
    return out


def _bind_listeners(addrs: list[str]) -> list[socket.socket]:
    socks: list[socket.socket] = []
    for addr in addrs:
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.bind((addr, 0))
        # The backlog must hold every client queued before this child starts accepting;
        # a full accept queue drops SYNs and stalls connect() for a retransmit (1 s).
        s.listen(256)
        s.setblocking(False)
        socks.append(s)
    return socks


def _connect_all(targets: list[tuple[str, int]], count: int) -> list[socket.socket]:
    out: list[socket.socket] = []
    for k in range(count):
        addr, port = targets[k % len(targets)]
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(10.0)
        s.connect((addr, port))
        out.append(s)
    return out


def _accept_all(listeners: list[socket.socket], expect: int) -> list[socket.socket]:
    accepted: list[socket.socket] = []
    deadline = time.monotonic() + SETUP_TIMEOUT
    with selectors.DefaultSelector() as sel:
        for s in listeners:
            sel.register(s, selectors.EVENT_READ)
        while len(accepted) < expect:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"accepted {len(accepted)} of {expect} connections")
            for key, _ in sel.select(timeout=left):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                with contextlib.suppress(BlockingIOError):
                    while True:
                        conn, _peer = sock.accept()
                        accepted.append(conn)
    return accepted


def _send(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def child_main(n_listeners: int, n_conn_hint: int) -> int:
    # Listeners + our clients + the accepted ends of the predecessor's clients.
    raise_nofile(n_listeners + 2 * n_conn_hint)
    listeners = _bind_listeners(listen_addresses(n_listeners))
    _send(
        {
            "pid": os.getpid(),
            "listeners": [list(s.getsockname()[:2]) for s in listeners],
        }
    )
    order = json.loads(sys.stdin.readline())
    targets = [(str(a), int(p)) for a, p in order["connect"]]
    clients = _connect_all(targets, int(order["count"]))
    accepted = _accept_all(listeners, int(order["expect"]))
    _send({"ready": True, "connected": len(clients), "accepted": len(accepted)})
    sys.stdin.read()  # hold everything open until the parent closes the pipe
    return 0


# --- parent side -----------------------------------------------------------------------


def _spawn(n_listeners: int, n_conn: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            os.path.abspath(__file__),
            "--child",
            "--listeners",
            str(n_listeners),
            "--connections",
            str(n_conn),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so teardown can kill it whole
    )


def _read_json(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"fixture child {proc.pid} exited (status {proc.wait()})")
    data: dict[str, object] = json.loads(line)
    return data


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    """Close each child's stdin, then TERM and KILL its process group by id if it lingers."""
    for p in procs:
        with contextlib.suppress(OSError):
            if p.stdin is not None:
                p.stdin.close()
    deadline = time.monotonic() + 5.0
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if p.stdout is not None:
            p.stdout.close()


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@contextlib.contextmanager
def socket_fixture(
    listeners: int = 2000, connections: int = 5000, procs: int = 4, target_every: int = 5
) -> Iterator[Fixture]:
    """Hold ``listeners`` loopback listeners and ``connections`` established connections
    across ``procs`` child processes; clients connect to every ``target_every``-th
    listener of the next child (a stride prime to 4 mixes ::1 and 127.0.0.x targets)."""
    shares, conn_shares = _split(listeners, procs), _split(connections, procs)
    children: list[subprocess.Popen[str]] = []
    try:
        for i in range(procs):
            children.append(_spawn(shares[i], conn_shares[i]))
        hellos = [_read_json(c) for c in children]
        per_child = [[(str(a), int(p)) for a, p in h["listeners"]] for h in hellos]  # type: ignore[attr-defined]
        for i, child in enumerate(children):
            nxt = per_child[(i + 1) % procs]
            order = {
                "connect": nxt[::target_every],
                "count": conn_shares[i],
                "expect": conn_shares[(i - 1) % procs],
            }
            assert child.stdin is not None
            child.stdin.write(json.dumps(order) + "\n")
            child.stdin.flush()
        for c in children:
            _read_json(c)  # {"ready": true, ...}; a failed child raises above
        pids = tuple(int(h["pid"]) for h in hellos)  # type: ignore[call-overload]
        yield Fixture(
            pids=pids,
            listeners=tuple((a, p, pids[i]) for i, socks in enumerate(per_child) for a, p in socks),
            targets=tuple(
                (a, p, pids[i])
                for i, socks in enumerate(per_child)
                for a, p in socks[::target_every]
            ),
            connections=connections,
            _procs=tuple(children),
        )
    finally:
        _stop(children)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--listeners", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=5000)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args.listeners, args.connections)
    t0 = time.perf_counter()
    with socket_fixture(args.listeners, args.connections, args.procs) as fx:
        took = time.perf_counter() - t0
        print(
            f"fixture up in {took:.2f} s: {len(fx.listeners)} listeners, "
            f"{fx.connections} connections, pids {' '.join(map(str, fx.pids))}"
        )
        print(f"a port with clients: {fx.targets[0][1]}  (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
