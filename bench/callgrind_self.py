"""Self cost per object file and per function, per request, from two callgrind runs.

    valgrind --tool=callgrind --callgrind-out-file=A .venv/bin/python \\
        bench/bench_gateway_hotpath.py --sockets keep --requests 1000
    valgrind --tool=callgrind --callgrind-out-file=B ... --requests 3000
    .venv/bin/python bench/callgrind_self.py A B 2000 [TOP]

B minus A leaves the requests without the start-up; each line is instructions (Ir) per
request spent in that object file (libpython, llhttp, uvloop, a compiled module) or function
itself, not in what it calls. Issue 9 used it to say how much of a request is the interpreter.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_NAME = re.compile(r"\((\d+)\)(?: (.*))?")


def _name(table: dict[str, str], text: str) -> str:
    # callgrind compresses names: "(7) name" the first time, "(7)" after.
    m = _NAME.match(text)
    if m is None:
        return text
    if m.group(2) is not None:
        table[m.group(1)] = m.group(2)
    return table[m.group(1)]


def self_costs(path: Path) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    objects: dict[str, str] = {}
    functions: dict[str, str] = {}
    by_object: Counter[str] = Counter()
    by_function: Counter[tuple[str, str]] = Counter()
    ob = fn = ""
    call_line = False
    with path.open() as f:
        for line in f:
            if line.startswith("ob="):
                ob = _name(objects, line[3:].strip())
            elif line.startswith("fn="):
                fn = _name(functions, line[3:].strip())
            elif line.startswith("cob="):
                _name(objects, line[4:].strip())
            elif line.startswith("cfn="):
                _name(functions, line[4:].strip())
            elif line.startswith("calls="):
                call_line = True  # the next cost line is the callee's inclusive cost
            elif line[:1] in "0123456789+-*":
                if call_line:
                    call_line = False
                    continue
                parts = line.split()
                if len(parts) >= 2:
                    by_object[ob] += int(parts[1])
                    by_function[ob, fn] += int(parts[1])
    return by_object, by_function


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("fewer", type=Path, help="callgrind output of the shorter run")
    ap.add_argument("more", type=Path, help="callgrind output of the longer run")
    ap.add_argument("requests", type=int, help="requests the longer run made more")
    ap.add_argument("top", type=int, nargs="?", default=30, help="functions to list")
    args = ap.parse_args()
    a_ob, a_fn = self_costs(args.fewer)
    b_ob, b_fn = self_costs(args.more)
    n = args.requests
    total = (sum(b_ob.values()) - sum(a_ob.values())) / n
    print(f"{total:10,.0f}        instructions per request")
    for ob in sorted(a_ob.keys() | b_ob.keys(), key=lambda o: a_ob[o] - b_ob[o]):
        d = (b_ob[ob] - a_ob[ob]) / n
        if abs(d) >= 50:
            print(f"{d:10,.0f} {100 * d / total:5.1f}%  {ob}")
    print()
    for key in sorted(a_fn.keys() | b_fn.keys(), key=lambda k: a_fn[k] - b_fn[k])[: args.top]:
        d = (b_fn[key] - a_fn[key]) / n
        print(f"{d:10,.0f} {100 * d / total:5.1f}%  {key[0].rsplit('/', 1)[-1]}  {key[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
