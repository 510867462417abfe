"""How long the access writer holds the GIL per batch (issue 9 item 2).

One 0.2 s batch at ~24k req/s is 4,800 records; each stretch below is time the event loop,
on the same core, can lose to the writer thread. Runs alone.
"""

import collections
import pathlib
import tempfile
import time

from homeport import metrics
from homeport.gateway.contract import AccessRecord
from homeport.store import Store

N = 4800


def main() -> None:
    recs = [
        AccessRecord(
            time.time(),
            "127.0.0.1",
            40000 + i % 1000,
            "app.localhost",
            "GET",
            "/",
            200,
            40,
            120,
            0.3 + (i % 7) * 0.1,
            "app",
        )
        for i in range(N)
    ]
    requests = metrics.RequestStats()
    for _ in range(3):
        t = time.perf_counter()
        requests.observe(recs)
    print(f"observe {N}: {(time.perf_counter() - t) * 1e3:.2f} ms")
    store = Store(pathlib.Path(tempfile.mkdtemp()) / "s.db")
    for _ in range(3):
        t = time.perf_counter()
        store.append_access(recs)
    print(f"append_access {N} (wall, GIL released only in each step): "
          f"{(time.perf_counter() - t) * 1e3:.2f} ms")  # fmt: skip
    store.close()
    pending = collections.deque(recs)
    t = time.perf_counter()
    batch: list[AccessRecord] = []
    while pending and len(batch) < 5000:
        batch.append(pending.popleft())
    print(f"popleft loop {N}: {(time.perf_counter() - t) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
