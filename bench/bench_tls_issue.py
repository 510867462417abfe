"""Cost of the local CA on the TLS path (issue 12): leaf issuance and the SNI callback.

    .venv/bin/python bench/bench_tls_issue.py [--rounds 7] [--names 50]

Measures, in a temporary state dir, the median of ``--rounds`` runs of:

- root creation (first use of a state dir);
- leaf issuance for a name never seen: P-256 key, sign, two files written, SSLContext loaded
  (``LeafContexts.context_for`` on a new name), and the same for an RSA-2048 key as the
  peer (what mkcert and Caddy's ``tls internal`` default to, not used here: the reason for
  P-256);
- a leaf taken from disk by a fresh process's cache (daemon restart) and from memory;
- the SNI callback on a real ``SSLObject`` for a cached name;
- a full loopback TLS 1.3 handshake with the SNI callback swapping in the leaf, against the
  same handshake on a context holding that leaf statically (the peer), interleaved: the
  ratio is what the callback adds to a new connection.

Prints a table; nothing is asserted. Talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from homeport.tls import ca
from homeport.tls.authority import Authority, utcnow
from homeport.tls.names import LeafSpec, leaf_for
from homeport.tls.server import LeafContexts, server_context


def timed(fn: Callable[[], object], n: int = 1) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def p99(xs: list[float]) -> float:
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * 0.99))]


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1e6:9.1f} µs"


def one_round(r: int, names: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        a = Authority(state)
        out["root"] = timed(a.root)
        leaves = LeafContexts(a)
        specs = [leaf_for(f"app{r}x{i}.localhost") for i in range(names)]
        out["new"] = sum(timed(lambda s=s: leaves.context_for(s)) for s in specs) / names
        root, now = a.root(), utcnow()
        spec = LeafSpec("rsa.localhost", ("rsa.localhost",))

        def rsa_leaf() -> None:
            key = rsa.generate_private_key(65537, 2048)
            ca.build_leaf(root, spec, now, key)  # type: ignore[arg-type]

        out["rsa"] = timed(rsa_leaf)
        fresh = LeafContexts(Authority(state))  # a restarted daemon: disk, then memory
        out["disk"] = sum(timed(lambda s=s: fresh.context_for(s)) for s in specs) / names
        out["memory"] = timed(lambda: fresh.context_for(specs[0]), 2000)
        ctx = server_context(state)
        name = f"app{r}x0.localhost"

        def wrap() -> ssl.SSLObject:
            return ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)

        def callback() -> None:
            fresh.sni(wrap(), name, ctx)

        out["sni"] = max(timed(callback, 2000) - timed(wrap, 2000), 0.0)
    return out


def issuance(rounds: int, names: int) -> dict[str, list[float]]:
    runs = [one_round(r, names) for r in range(rounds)]
    return {k: [run[k] for run in runs] for k in runs[0]}


def serve(ctx: ssl.SSLContext, srv: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        try:
            with ctx.wrap_socket(conn, server_side=True) as s:
                s.sendall(b"x")
        except (OSError, ssl.SSLError):
            conn.close()


def handshakes(rounds: int, per_round: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        sni_ctx = server_context(state)
        files = Authority(state).leaf(leaf_for("app.localhost"))
        static = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        static.set_alpn_protocols(["h2", "http/1.1"])
        static.load_cert_chain(files.cert, files.key)
        client = ssl.create_default_context(cafile=str(state / "tls" / "ca.pem"))
        client.set_alpn_protocols(["h2", "http/1.1"])
        servers = []
        stop = threading.Event()
        for ctx in (sni_ctx, static):
            srv = socket.create_server(("127.0.0.1", 0))
            t = threading.Thread(target=serve, args=(ctx, srv, stop), daemon=True)
            t.start()
            servers.append((srv, t))

        def one(port: int) -> None:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
                client.wrap_socket(raw, server_hostname="app.localhost") as s,
            ):
                s.recv(1)

        ports = [srv.getsockname()[1] for srv, _ in servers]
        one(ports[0])  # issue the leaf outside the timing
        sni: list[float] = []
        plain: list[float] = []
        for r in range(rounds):
            order = [(ports[0], sni), (ports[1], plain)]
            for port, sink in order if r % 2 == 0 else order[::-1]:
                sink.extend(timed(lambda port=port: one(port)) for _ in range(per_round))
        stop.set()
        for srv, t in servers:
            srv.shutdown(socket.SHUT_RDWR)
            srv.close()
            t.join(5)
        return sni, plain


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--names", type=int, default=50)
    p.add_argument("--handshakes", type=int, default=200, help="handshakes per round and side")
    args = p.parse_args()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; nproc {os.cpu_count()}")
    r = issuance(args.rounds, args.names)
    print(f"medians of {args.rounds} rounds ({args.names} names each where per name)")
    print(f"  root creation (P-256, first use)          {med(r['root'])}")
    print(f"  leaf, new name (P-256 issue+write+ctx)    {med(r['new'])}")
    print(f"  leaf, RSA-2048 build only (peer default)  {med(r['rsa'])}")
    print(f"  leaf, from disk (fresh cache)             {med(r['disk'])}")
    print(f"  leaf, from memory                         {med(r['memory'])}")
    print(f"  SNI callback, cached name                 {med(r['sni'])}")
    sni, plain = handshakes(args.rounds, args.handshakes)
    ms, mp = statistics.median(sni), statistics.median(plain)
    print(f"TLS 1.3 handshake on loopback, {args.handshakes} per round x {args.rounds}, median")
    print("(p99) of single handshakes, the two sides interleaved by round:")
    print(f"  with SNI callback  {ms * 1e6:9.1f} µs  (p99 {p99(sni) * 1e6:.0f} µs)")
    print(f"  static context     {mp * 1e6:9.1f} µs  (p99 {p99(plain) * 1e6:.0f} µs)")
    print(f"  ratio              {ms / mp:9.3f}x")
    load = os.getloadavg()
    print(f"load average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
