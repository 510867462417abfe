"""Child process run inside the probe namespace: ``python -m homeport.audit._netns_probe
TIMEOUT ADDR|PORT ...``. Prints one JSON line per target: reachable / refused / timeout /
error. A connect is closed as soon as it succeeds; nothing is ever sent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys


async def _try(addr: str, port: int, limit: float) -> str:
    try:
        async with asyncio.timeout(limit):
            _, writer = await asyncio.open_connection(addr, port)
    except TimeoutError:
        return "timeout"  # SYN dropped: a firewall filters it
    except ConnectionRefusedError:
        return "refused"  # RST or ICMP port-unreachable: nobody there, or a reject rule
    except OSError:
        return "error"  # unreachable network/host from here
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return "reachable"


async def _main(limit: float, pairs: list[str]) -> None:
    targets = [(a, int(p)) for a, _, p in (x.rpartition("|") for x in pairs)]
    results = await asyncio.gather(*(_try(a, p, limit) for a, p in targets))
    for (a, p), reach in zip(targets, results, strict=True):
        sys.stdout.write(json.dumps({"address": a, "port": p, "reach": reach}) + "\n")


if __name__ == "__main__":
    asyncio.run(_main(float(sys.argv[1]), sys.argv[2:]))
