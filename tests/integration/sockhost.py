"""A child process that opens the sockets a test asks for, then waits.

Usage: python sockhost.py SPEC_JSON
SPEC is a list of {"proto": "tcp"|"udp", "addr": "...", "v6only": 0|1|null, "fork": bool}.
It prints one JSON line {"pids": [...], "ports": [...]} once every socket is bound
(the readiness signal) and exits when its stdin closes. With "fork", a child process is
forked after binding, so two processes hold the same listening socket.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def main() -> None:
    spec = json.loads(sys.argv[1])
    socks = []
    for item in spec:
        fam = socket.AF_INET6 if ":" in item["addr"] else socket.AF_INET
        kind = socket.SOCK_STREAM if item["proto"] == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(fam, kind)
        if fam == socket.AF_INET6 and item.get("v6only") is not None:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, item["v6only"])
        s.bind((item["addr"], item.get("port", 0)))
        if kind == socket.SOCK_STREAM:
            s.listen()
        socks.append(s)
    pids = [os.getpid()]
    if any(item.get("fork") for item in spec):
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(w)
            os.read(r, 1)  # wait until the parent goes away
            os._exit(0)
        os.close(r)
        pids.append(child)
    print(json.dumps({"pids": pids, "ports": [s.getsockname()[1] for s in socks]}), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
