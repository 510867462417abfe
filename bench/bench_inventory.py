"""Issue 2 inventory benchmark: homeport against ss and psutil on a loaded loopback.

Builds the fixture of ``bench/fixture_sockets.py`` (2,000 listeners, a quarter on ::1, the
rest over 127.0.0.1-3; 5,000 established connections across 4 child processes), then
times, interleaved in one run (the order of each pair flips every round so drift and cache
warmth cancel out):

    homeport ls --json  vs  ss -tlnp                  whole processes, stdout to /dev/null
    homeport ls         vs  ss -tlnp                  table, stdout not a TTY
    homeport who P      vs  ss -tlnp 'sport = :P'     P has clients connected
    homeport.listeners() vs psutil.net_connections('tcp') filtered to LISTEN, in-process
    homeport --version  (absolute target), beside the bare interpreter's start for reference

The homeport CLI runs through the venv's console script, as a user would run it. Each
line reports min and median of every side, the ratio of medians and PASS/MISS against
the issue's target. ``--readme`` writes the table and machine facts into this benchmark's
section of bench/README.md; ``--profile`` adds where homeport's time goes (import times
for startup, cProfile of ``listeners()`` and of ``ls --json`` in the fixture).

    .venv/bin/python bench/bench_inventory.py [--rounds 11] [--readme] [--profile]
        [--candidate SRC]

Exit status: 0 when every target is met, 1 when one is missed; a run whose fixture lost a
child midway stops with a message and records nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from fixture_sockets import Fixture, socket_fixture  # noqa: E402
from homeport.inventory import bpfwalk  # noqa: E402

VENV_BIN = Path(sys.executable).parent
HOMEPORT = str(VENV_BIN / "homeport")
README = HERE / "README.md"
SECTION = "## Inventory (issue 2)"
BEGIN, END = "<!-- inventory-bench:begin -->", "<!-- inventory-bench:end -->"

#: One timed run: (wall seconds, CPU seconds of user + system time).
Sample = tuple[float, float]
Timer = Callable[[], Sample]


@dataclass(frozen=True, slots=True)
class Case:
    """One comparison: homeport's side, the peer's side (None for an absolute target)."""

    name: str
    ours: Timer
    peer: Timer | None
    peer_name: str
    #: max ratio of medians; or, with ``absolute``, max median of homeport's side in seconds
    target: float
    #: judge homeport's own median (the peer is then only a reference)
    absolute: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    """Wall times judge the targets. CPU times are shown beside them because they move
    far less when other work loads the machine (they do count both owner-walk threads)."""

    case: Case
    ours: tuple[Sample, ...]
    peer: tuple[Sample, ...]

    def wall(self, side: str) -> list[float]:
        return [x[0] for x in (self.ours if side == "ours" else self.peer)]

    def cpu(self, side: str) -> list[float]:
        return [x[1] for x in (self.ours if side == "ours" else self.peer)]

    @property
    def ratio(self) -> float | None:
        if not self.peer:
            return None
        return statistics.median(self.wall("ours")) / statistics.median(self.wall("peer"))

    @property
    def cpu_ratio(self) -> float | None:
        if not self.peer:
            return None
        return statistics.median(self.cpu("ours")) / statistics.median(self.cpu("peer"))

    @property
    def passed(self) -> bool:
        if self.case.absolute:
            return statistics.median(self.wall("ours")) <= self.case.target
        return self.ratio is not None and self.ratio <= self.case.target


# --- timers ------------------------------------------------------------------------------


def user_environ(pycache: str) -> dict[str, str]:
    """The environment an installed homeport meets: bytecode cached.

    A session may export PYTHONDONTWRITEBYTECODE=1, which makes every start recompile
    homeport's modules (~40 ms more). The cache goes to a private prefix so the work tree
    stays clean; the warm-up round fills it.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def process_timer(argv: Sequence[str], env: dict[str, str] | None = None) -> Timer:
    """Wall time of a whole process, stdout and stderr to /dev/null, exit status checked."""

    def run() -> Sample:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        took = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode:
            err = proc.stderr.decode(errors="replace").strip()
            raise SystemExit(f"bench_inventory: {' '.join(argv)} exited {proc.returncode}: {err}")
        return took, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)

    return run


def call_timer(fn: Callable[[], object]) -> Timer:
    """Wall and CPU time of an in-process call; the CPU of children it forks and reaps (the
    owner walk's helper) counts too."""

    def cpu() -> float:
        me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    def run() -> Sample:
        c0, t0 = cpu(), time.perf_counter()
        fn()
        return time.perf_counter() - t0, cpu() - c0

    return run


def psutil_listeners() -> list[object]:
    import psutil

    return [c for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN]


def homeport_listeners() -> list[object]:
    import homeport

    return list(homeport.listeners())


_SERVE_LISTENERS = """
import sys, time, homeport
homeport.listeners()
for _ in sys.stdin:
    c0, t0 = time.process_time(), time.perf_counter(); homeport.listeners()
    print(time.perf_counter() - t0, time.process_time() - c0, flush=True)
"""


@contextlib.contextmanager
def remote_listeners(env: dict[str, str]) -> Iterator[Timer]:
    """``homeport.listeners()`` timed inside a child that imports another source tree."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE_LISTENERS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def run() -> Sample:
        stdin.write("\n")
        stdin.flush()
        wall, cpu = stdout.readline().split()
        return float(wall), float(cpu)

    try:
        yield run
    finally:
        stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stdout.close()


def build_cases(
    port: int, pycache: str, src: str | None = None, stack: contextlib.ExitStack | None = None
) -> list[Case]:
    """The five comparisons (six where the owner walk runs in the kernel: ``who`` with the
    /proc walk too); with ``src``, homeport's side runs from that source tree."""
    ss = shutil.which("ss")
    if ss is None:
        raise SystemExit("bench_inventory: ss is not installed (Debian package iproute2)")
    env = user_environ(pycache)
    tag = ""
    listeners_timer = call_timer(homeport_listeners)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (src, env.get("PYTHONPATH"))))
        tag = " [candidate]"
        assert stack is not None
        listeners_timer = stack.enter_context(remote_listeners(env))

    def hp(*args: str) -> Timer:
        return process_timer([HOMEPORT, *args], env)

    ss_all = process_timer([ss, "-tlnp"])
    return [
        Case("ls --json" + tag, hp("ls", "--json"), ss_all, "ss -tlnp", 1.0),
        Case("ls (table)" + tag, hp("ls"), ss_all, "ss -tlnp", 1.2),
        Case(
            f"who {port}{tag}",
            hp("who", str(port)),
            process_timer([ss, "-tlnp", f"sport = :{port}"]),
            "ss -tlnp 'sport = :P'",
            0.5,
        ),
        *(
            [
                Case(
                    f"who {port}, /proc walk{tag}",
                    process_timer(
                        [HOMEPORT, "who", str(port)], {**env, bpfwalk.ENV_WALK: "procfs"}
                    ),
                    process_timer([ss, "-tlnp", f"sport = :{port}"]),
                    "ss -tlnp 'sport = :P'",
                    0.5,
                )
            ]
            if bpfwalk.usable()  # the row above is the kernel walk: show the fallback too
            else []
        ),
        Case(
            "listeners() in-process" + tag,
            listeners_timer,
            call_timer(psutil_listeners),
            "psutil.net_connections",
            0.5,
        ),
        Case(
            "--version" + tag,
            hp("--version"),
            process_timer([sys.executable, "-c", "pass"], env),
            "python -c pass (reference)",
            0.060,
            absolute=True,
        ),
    ]


def measure(cases: list[Case], rounds: int) -> list[Result]:
    """Interleave every case's two sides; flip which goes first every round."""
    ours: dict[str, list[Sample]] = {c.name: [] for c in cases}
    peer: dict[str, list[Sample]] = {c.name: [] for c in cases}
    for c in cases:  # warm-up: imports, page cache, dentries; not recorded
        c.ours()
        if c.peer:
            c.peer()
    for r in range(rounds):
        for c in cases:
            sides: list[tuple[Timer, list[Sample]]] = [(c.ours, ours[c.name])]
            if c.peer is not None:
                sides.append((c.peer, peer[c.name]))
            for fn, sink in sides if r % 2 == 0 else reversed(sides):
                sink.append(fn())
    return [Result(c, tuple(ours[c.name]), tuple(peer[c.name])) for c in cases]


# --- checks, facts, report ---------------------------------------------------------------


def sanity(fx: Fixture) -> str:
    """Prove homeport sees the whole fixture before timing it (else the race is void)."""
    out = subprocess.run([HOMEPORT, "ls", "--json", "--tcp"], capture_output=True, check=True)
    seen = {(x["address"], x["port"]): set(x["pids"]) for x in json.loads(out.stdout)["listeners"]}
    missing = [(a, p) for a, p, pid in fx.listeners if pid not in seen.get((a, p), set())]
    if missing:
        raise SystemExit(f"bench_inventory: homeport ls misses {len(missing)} fixture listeners")
    ss = subprocess.run(["ss", "-Htln"], capture_output=True, text=True, check=True)
    return (
        f"homeport ls sees all {len(fx.listeners)} fixture listeners with their owner PIDs; "
        f"ss -Htln lists {len(ss.stdout.splitlines())} TCP listeners on this machine"
    )


def machine(load_at_start: float) -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1).strip() if m else cpu
    ss_version = subprocess.run(["ss", "-V"], capture_output=True, text=True).stdout.strip()
    import psutil

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "uname -r": platform.release(),
        "cpu": cpu,
        "python": platform.python_version(),
        "ss": ss_version,
        "psutil": psutil.__version__,
        # The box is shared: a high load average explains wide min-median gaps.
        "load avg 1 min (start / end)": f"{load_at_start:.1f} / {os.getloadavg()[0]:.1f}",
    }


def _ms(xs: Sequence[float]) -> str:
    return f"{min(xs) * 1e3:.1f} / {statistics.median(xs) * 1e3:.1f}" if xs else ""


def table(results: list[Result], rounds: int) -> str:
    lines = [
        f"| case (n={rounds}) | homeport min / median ms | peer | peer min / median ms "
        "| ratio | target | verdict | CPU ms homeport / peer | CPU ratio |",
        "|---|---:|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        c = r.case
        target = f"<= {c.target * 1e3:.0f} ms" if c.absolute else f"<= {c.target:g}"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
        if c.absolute and ratio:
            ratio = f"({ratio})"  # shown for reference, not judged
        verdict = "PASS" if r.passed else "MISS"
        cpu = f"{statistics.median(r.cpu('ours')) * 1e3:.1f} / "
        cpu += f"{statistics.median(r.cpu('peer')) * 1e3:.1f}" if r.peer else "-"
        cpu_ratio = f"{r.cpu_ratio:.2f}" if r.cpu_ratio is not None else ""
        lines.append(
            f"| {c.name} | {_ms(r.wall('ours'))} | {c.peer_name} | {_ms(r.wall('peer'))} "
            f"| {ratio} | {target} | {verdict} | {cpu} | {cpu_ratio} |"
        )
    return "\n".join(lines)


def report(results: list[Result], command: str, facts: dict[str, str], note: str) -> str:
    head = ", ".join(f"{k}: {v}" for k, v in facts.items())
    rounds = len(results[0].ours)
    return (
        f"Run: `{command}`  \n"
        f"Machine: {head}  \n"
        f"Fixture: 2,000 listeners (500 on ::1, 1,500 over 127.0.0.1-3), 5,000 established "
        f"connections across 4 processes. Check: {note}.\n\n{table(results, rounds)}\n"
    )


def write_readme(text: str, path: Path = README) -> None:
    """Replace only the generated block inside this benchmark's section."""
    block = f"{BEGIN}\n{text}{END}"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + block + old[old.index(END) + len(END) :]
    elif SECTION in old:
        at = old.index(SECTION) + len(SECTION)
        new = old[:at] + "\n\n" + block + "\n" + old[at:]
    else:
        new = old.rstrip("\n") + f"\n\n{SECTION}\n\n{block}\n"
    path.write_text(new)


# --- profile -----------------------------------------------------------------------------


def import_profile(args: Sequence[str], env: dict[str, str], top: int = 14) -> str:
    """``python -X importtime`` of the console script, biggest cumulative first."""
    argv = [sys.executable, "-X", "importtime", HOMEPORT, *args]
    subprocess.run(argv, capture_output=True, env=env, check=True)  # fill the bytecode cache
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    rows: list[tuple[int, int, str]] = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(.*)$", line)
        if m:
            rows.append((int(m.group(2)), int(m.group(1)), m.group(3).rstrip()))
    total = sum(r[1] for r in rows)
    rows.sort(reverse=True)
    out = [
        f"all imports: {total / 1e3:.1f} ms (self times summed)",
        "cumulative us | self us | module",
    ]
    out += [f"{c:>13} | {s:>7} | {name}" for c, s, name in rows[:top]]
    return "\n".join(out)


def cprofile(fn: Callable[[], object], top: int = 15) -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime").print_stats(top)
    text = buf.getvalue()
    return text[text.index("   ncalls") :].rstrip() if "   ncalls" in text else text


def ls_json_in_process() -> None:
    from homeport.cli import main
    from homeport.cli.env import Env

    sink = io.StringIO()
    main(["ls", "--json"], Env(stdout=sink, stderr=sink, stdout_isatty=False, color=False))


def profile(pycache: str) -> str:
    env = user_environ(pycache)
    homeport_listeners()  # warm caches the way the timed runs do
    return "\n\n".join(
        (
            "### startup: -X importtime of `homeport --version`\n\n```\n"
            + import_profile(["--version"], env),
            "```\n\n### startup: -X importtime of `homeport ls --json`\n\n```\n"
            + import_profile(["ls", "--json"], env),
            "```\n\n### cProfile: `homeport.listeners()` in the fixture\n\n```\n"
            + cprofile(homeport_listeners),
            "```\n\n### cProfile: `homeport ls --json` in-process\n\n```\n"
            + cprofile(ls_json_in_process)
            + "\n```\n",
        )
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=11, help="timed rounds (>= 5; default 11)")
    ap.add_argument("--readme", action="store_true", help="write results into bench/README.md")
    ap.add_argument("--profile", action="store_true", help="also report where time goes")
    ap.add_argument(
        "--candidate",
        metavar="SRC",
        help="also time homeport from this source tree (e.g. a checkout with a patch "
        "applied, its src/ folder), interleaved with the installed one",
    )
    args = ap.parse_args(argv)
    rounds = max(5, args.rounds)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with socket_fixture(2000, 5000, 4) as fx:
        print(f"fixture up in {time.perf_counter() - t0:.1f} s (pids {fx.pids})", flush=True)
        note = sanity(fx)
        print(note, flush=True)
        port = fx.targets[len(fx.targets) // 2][1]
        with (
            tempfile.TemporaryDirectory(prefix="homeport-bench-pycache-") as pycache,
            contextlib.ExitStack() as stack,
        ):
            cases = build_cases(port, pycache)
            if args.candidate:
                cases += build_cases(port, pycache, os.path.abspath(args.candidate), stack)
            results = measure(cases, rounds)
            prof = profile(pycache) if args.profile else ""
        if fx.dead():
            # Seen on the shared box: another suite's cleanup signalled a fixture child
            # mid-run (PIDs wrap quickly here). Numbers without the full fixture are void.
            raise SystemExit(f"bench_inventory: fixture children died mid-run {fx.dead()}")
    command = " ".join([".venv/bin/python", "bench/bench_inventory.py", *sys.argv[1:]])
    text = report(results, command, machine(load), note)
    print(text)
    if prof:
        print(prof)
    if args.readme:
        write_readme(text + ("\n" + prof if prof else ""))
        print(f"written to {README.relative_to(ROOT)}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
