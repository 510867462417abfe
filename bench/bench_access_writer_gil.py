import pathlib
import tempfile
import time

from homeport import metrics
from homeport.gateway.contract import AccessRecord
from homeport.store import Store

n = 4800
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
    for i in range(n)
]
cls = [v for v in vars(metrics).values() if isinstance(v, type) and hasattr(v, "observe")][0]
r = cls()
for _ in range(3):
    t = time.perf_counter()
    r.observe(recs)
    t1 = time.perf_counter()
print("observe 4800: %.2f ms" % ((t1 - t) * 1e3))
d = pathlib.Path(tempfile.mkdtemp())
s = Store(d / "s.db")
for _ in range(3):
    t = time.perf_counter()
    s.append_access(recs)
    t1 = time.perf_counter()
print("append_access 4800 (wall, GIL released in step): %.2f ms" % ((t1 - t) * 1e3))
from collections import deque

q = deque(recs)
t = time.perf_counter()
b = []
while q and len(b) < 5000:
    b.append(q.popleft())
print("popleft loop 4800: %.2f ms" % ((time.perf_counter() - t) * 1e3))
