"""Projects run by a real daemon with real processes: order and parallel starts, readiness,
restart with backoff, crash loops, services that fork or ignore SIGTERM, Ctrl-C and ``down``
leaving no process, and ``kill -9`` of the daemon followed by adoption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from project_support import SERVER, Homeport, alive, get, homeport_in, stack_pids, wait_for


@pytest.fixture
def hp(tmp_path: Path, free_port: int) -> Iterator[Homeport]:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "server.py").write_text(SERVER)
    with homeport_in(root, tmp_path / "state", free_port) as h:
        yield h


PY = sys.executable


def test_order_parallel_starts_interpolation_and_down(hp: Homeport) -> None:
    hp.write(
        f"""
        [project]
        name = "demo"

        [services.slow]
        cmd = "sleep 0.4; exec {PY} server.py"
        [services.other]
        cmd = "sleep 0.4; exec {PY} server.py"
        route = false
        [services.setup]
        cmd = "echo prepared ${{slow.port}} > prepared.txt"
        kind = "task"
        depends_on = ["slow"]
        [services.api]
        args = ["{PY}", "server.py"]
        env = {{ MARK = "slow=${{slow.port}} other=${{other.url}} me=${{api.host}}" }}
        depends_on = {{ slow = "ready", other = "started", setup = "completed" }}
        ready = {{ http = "/health", status = 200 }}
        """
    )
    up = hp.json("up", "-d")
    assert up["ok"] is True
    s = {x["name"]: x for x in up["project"]["services"]}
    assert s["setup"]["state"] == "completed"
    assert s["setup"]["exit_code"] == 0
    assert {s[n]["state"] for n in ("slow", "other", "api")} == {"ready"}
    # Independent services start in parallel: each started before the other was ready.
    assert s["slow"]["started"] < s["other"]["ready_since"]
    assert s["other"]["started"] < s["slow"]["ready_since"]
    # A dependent starts only after its condition held.
    assert s["setup"]["started"] >= s["slow"]["ready_since"]
    assert s["api"]["started"] >= s["slow"]["ready_since"]
    assert (hp.root / "prepared.txt").read_text().split() == ["prepared", str(s["slow"]["port"])]
    # Services run in the project root; ${...} resolved after the ports were chosen.
    status, body = get(s["api"]["port"], "x", "/")
    assert status == 200
    other = f"http://127.0.0.1:{s['other']['port']}"  # route = false: the direct URL
    assert body == f"slow={s['slow']['port']} other={other} me=127.0.0.1"
    # The gateway names the routed ones SERVICE.PROJECT.localhost.
    assert s["api"]["url"] == f"http://api.demo.localhost:{hp.port}"
    assert get(hp.port, f"api.demo.localhost:{hp.port}") == (200, body)
    assert s["other"]["url"] is None
    pids = stack_pids(s)
    assert len(pids) >= 3
    down = hp.json("down")
    assert {x["state"] for x in down["project"]["services"]} <= {"stopped", "completed"}
    assert alive(pids) == set()
    assert hp.run("ps", check=False).returncode != 0  # forgotten


def test_restart_on_failure_with_backoff_then_stays_up(hp: Homeport) -> None:
    # Exits twice (code 3), then serves: the run count lives in a file of its own.
    (hp.root / "flaky.sh").write_text(
        "n=$(cat runs 2>/dev/null || echo 0); echo $((n+1)) > runs\n"
        f"[ $n -ge 2 ] && exec {PY} server.py\n"
        "echo run $n fails; exit 3\n"
    )
    hp.write(
        """
        [services.flaky]
        cmd = "sh flaky.sh"
        restart = { policy = "on-failure", backoff = 0.05, backoff_max = 0.2, max = 5 }
        """
    )
    up = hp.json("up", "-d")
    flaky = up["project"]["services"][0]
    assert up["ok"] is True
    assert flaky["state"] == "ready"
    assert flaky["restarts"] == 2
    assert (hp.root / "runs").read_text().strip() == "3"
    logs = hp.run("logs", "flaky").stdout
    assert "run 0 fails" in logs
    assert "run 1 fails" in logs


def test_a_crash_loop_stops_at_the_maximum(hp: Homeport) -> None:
    hp.write(
        """
        [services.broken]
        cmd = "echo boom; exit 1"
        restart = { policy = "always", backoff = 0.05, max = 2 }
        """
    )
    done = hp.run("up", "-d", check=False)
    assert done.returncode == 1
    assert "boom" in done.stderr  # the last output lines of a failure are shown
    broken = hp.ps()["broken"]
    assert broken["state"] == "crashloop"
    assert broken["restarts"] == 2
    assert "giving up" in broken["message"]


def test_a_failed_dependency_blocks_its_dependents(hp: Homeport) -> None:
    hp.write(
        f"""
        [services.migrate]
        cmd = "exit 4"
        kind = "task"
        [services.api]
        args = ["{PY}", "server.py"]
        depends_on = ["migrate"]
        """
    )
    assert hp.run("up", "-d", check=False).returncode == 1
    s = hp.ps()
    assert s["migrate"]["state"] == "failed"
    assert s["migrate"]["exit_code"] == 4
    assert s["api"]["state"] == "blocked"
    assert s["api"]["pid"] is None


def test_forking_and_sigterm_ignoring_services_leave_nothing(hp: Homeport) -> None:
    (hp.root / "stubborn.py").write_text(
        "import signal, runpy, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "sys.argv = ['server.py']\n"
        "runpy.run_path('server.py', run_name='__main__')\n"
    )
    hp.write(
        f"""
        [services.forker]
        cmd = "{PY} server.py & {PY} -c 'import time; time.sleep(600)' & wait"
        [services.stubborn]
        args = ["{PY}", "stubborn.py"]
        stop_timeout = 1
        """
    )
    up = hp.json("up", "-d")
    s = {x["name"]: x for x in up["project"]["services"]}
    pids = stack_pids(s)
    assert len(pids) >= 4  # the shell, its two children, the stubborn server
    hp.json("down")
    assert alive(pids) == set()


def test_ctrl_c_of_a_foreground_up_stops_the_stack(hp: Homeport) -> None:
    hp.write(
        f"""
        [services.web]
        args = ["{PY}", "server.py"]
        [services.worker]
        cmd = "echo working; exec sleep 600"
        port = false
        depends_on = ["web"]
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "homeport", "up"],
        cwd=hp.root,
        env=hp.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # the table, then the services' prefixed output
            seen.append(line)
            if line.startswith("worker") and "| working" in line:
                break
        assert any(line.startswith("SERVICE") for line in seen)
        assert any(f"http://web.proj.localhost:{hp.port}" in line for line in seen)
        pids = stack_pids(hp.ps())
        assert pids
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert alive(pids) == set()


def test_kill_9_of_the_daemon_then_restart_adopts(hp: Homeport) -> None:
    hp.write(
        f"""
        [services.web]
        args = ["{PY}", "server.py"]
        env = {{ MARK = "still here" }}
        [services.gone]
        cmd = "exec sleep 600"
        port = false
        """
    )
    before = {x["name"]: x for x in hp.json("up", "-d")["project"]["services"]}
    daemon = hp.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    wait_for(lambda: alive({daemon}) == set(), what="the daemon's death")
    os.kill(before["gone"]["pid"], signal.SIGKILL)  # one dies while no daemon watches
    after = hp.ps()  # the CLI starts a new daemon, which restores the stack
    assert hp.daemon_pid() != daemon
    assert after["web"]["state"] == "ready"
    assert after["web"]["pid"] == before["web"]["pid"]
    assert "adopted" in after["web"]["message"]
    assert after["gone"]["state"] == "lost"
    url = f"web.proj.localhost:{hp.port}"
    assert get(hp.port, url) == (200, "still here")
    pids = stack_pids(after)
    hp.json("down")
    assert alive(pids | {before["web"]["pid"]}) == set()


def test_stop_start_restart_one_service(hp: Homeport) -> None:
    hp.write(
        f"""
        [services.db]
        args = ["{PY}", "server.py"]
        route = false
        [services.api]
        args = ["{PY}", "server.py"]
        depends_on = ["db"]
        """
    )
    first = {x["name"]: x for x in hp.json("up", "-d")["project"]["services"]}
    restarted = {x["name"]: x for x in hp.json("restart", "api")["project"]["services"]}
    assert restarted["api"]["state"] == "ready"
    assert restarted["api"]["pid"] != first["api"]["pid"]
    assert restarted["db"]["pid"] == first["db"]["pid"]  # only the named service
    stopped = {x["name"]: x for x in hp.json("stop", "db")["project"]["services"]}
    assert stopped["db"]["state"] == "stopped"
    assert stopped["api"]["state"] == "stopped"  # its dependent first
    started = {x["name"]: x for x in hp.json("start", "api")["project"]["services"]}
    assert started["db"]["state"] == "ready"  # what it needs comes back with it
    assert started["api"]["state"] == "ready"


def test_bad_file_is_exit_2_naming_the_key(hp: Homeport) -> None:
    hp.write('[services.web]\ncmd = "x"\nready = { http = "health" }\n')
    for command in (("config",), ("up", "-d")):
        done = hp.run(*command, check=False)
        assert done.returncode == 2
        assert "services.web.ready.http" in done.stderr
        assert "Traceback" not in done.stderr
    assert hp.daemon_pid() is None  # a bad file never reached a daemon
    # With a daemon running, the daemon validates: the same error, the same status.
    hp.run("up", "--gateway", "-d")
    done = hp.run("up", "-d", check=False)
    assert done.returncode == 2
    assert "services.web.ready.http" in done.stderr
    assert 'must be a path starting with "/"' in done.stderr


def test_profiles_change_the_stack(hp: Homeport, cli: Callable[..., object]) -> None:
    hp.write(
        f"""
        [services.web]
        args = ["{PY}", "server.py"]
        env = {{ MARK = "dev" }}
        [profiles.test]
        services.web.env = {{ MARK = "test" }}
        """
    )
    shown = hp.json("config", "--profile", "test")
    assert shown["services"][0]["env"] == {"MARK": "test"}
    assert shown["changed"] == [{"key": "services.web.env.MARK", "profile": "test"}]
    up = hp.json("up", "-d", "--profile", "test")
    port = up["project"]["services"][0]["port"]
    assert get(port, "x") == (200, "test")


def test_up_one_service_starts_what_it_needs_only(hp: Homeport) -> None:
    hp.write(
        f"""
        [services.db]
        args = ["{PY}", "server.py"]
        [services.api]
        args = ["{PY}", "server.py"]
        depends_on = ["db"]
        [services.web]
        args = ["{PY}", "server.py"]
        depends_on = ["api"]
        [services.other]
        args = ["{PY}", "server.py"]
        """
    )
    up = hp.json("up", "-d", "api")
    assert sorted(s["name"] for s in up["project"]["services"]) == ["api", "db"]
    assert up["ok"] is True


def test_fast_output_arrives_whole_and_in_order(hp: Homeport) -> None:
    """20,000 lines as fast as a process can print them: every one reaches the daemon."""
    (hp.root / "chatty.py").write_text(
        "import sys\nfor i in range(20000):\n    sys.stdout.write(f'line {i}\\n')\n"
    )
    hp.write(
        f"""
        [services.chatty]
        args = ["{PY}", "chatty.py"]
        kind = "task"
        """
    )
    assert hp.json("up", "-d")["ok"] is True
    done = hp.run("logs", "--json", "-n", "20000")
    lines = [json.loads(x) for x in done.stdout.splitlines()]
    assert [x["line"] for x in lines] == [f"line {i}" for i in range(20000)]
    assert {x["service"] for x in lines} == {"chatty"}


def test_a_fixed_port_already_taken_fails_with_who_holds_it(hp: Homeport) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        hp.write(f'[services.db]\nargs = ["{PY}", "server.py"]\nport = {port}\n')
        assert hp.run("up", "-d", check=False).returncode == 1
        db = hp.ps()["db"]
    assert db["state"] == "failed"
    assert f"port {port} is already in use" in db["message"]


def test_env_files_reach_the_service_but_never_the_output_of_config(hp: Homeport) -> None:
    (hp.root / ".env").write_text("MARK=from-the-file\nSECRET=hunter2\n")
    (hp.root / "local.env").write_text("MARK=overridden-by-the-second\n")
    hp.write(
        f"""
        [services.web]
        args = ["{PY}", "server.py"]
        env_file = [".env", "local.env"]
        """
    )
    shown = hp.run("config", "--json").stdout + hp.run("config").stdout
    assert "hunter2" not in shown
    assert "overridden" not in shown
    port = hp.json("up", "-d")["project"]["services"][0]["port"]
    assert get(port, "x") == (200, "overridden-by-the-second")
    assert "hunter2" not in hp.run("ps", "--json").stdout


def test_logs_follow_keeps_up_with_10000_lines_a_second(hp: Homeport) -> None:
    """``logs -f`` while a service prints 30,000 lines at ~10,000 a second: none lost."""
    (hp.root / "steady.py").write_text(
        "import sys, time\n"
        "t0 = time.monotonic()\n"
        "for i in range(30000):\n"
        "    sys.stdout.write(f'line {i}\\n')\n"
        "    if i % 100 == 99:\n"
        "        sys.stdout.flush()\n"
        "        time.sleep(max(0.0, t0 + (i + 1) / 10000 - time.monotonic()))\n"
        "sys.stdout.flush()\n"
        "time.sleep(600)\n"
    )
    hp.write(
        f"""
        [services.steady]
        args = ["{PY}", "steady.py"]
        port = false
        """
    )
    hp.json("up", "-d")
    proc = subprocess.Popen(
        [sys.executable, "-m", "homeport", "logs", "-f", "--json"],
        cwd=hp.root,
        env=hp.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    got = []
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            got.append(json.loads(raw)["line"])
            if got[-1] == "line 29999":
                break
    finally:
        proc.kill()
        proc.communicate()
    assert got == [f"line {i}" for i in range(30000)]


def test_a_probe_that_never_passes_fails_after_its_retries(hp: Homeport) -> None:
    hp.write(
        f"""
        [services.api]
        args = ["{PY}", "server.py"]
        ready = {{ http = "/health", status = 201, interval = 0.1, retries = 2 }}
        [services.web]
        args = ["{PY}", "server.py"]
        depends_on = ["api"]
        """
    )
    assert hp.run("up", "-d", check=False).returncode == 1
    s = hp.ps()
    assert s["api"]["state"] == "failed"
    assert "not ready" in s["api"]["message"]
    assert "after 2 retries" in s["api"]["message"]
    assert s["web"]["state"] == "blocked"


def test_services_with_their_own_address_keep_the_same_default_port(hp: Homeport) -> None:
    """``address = "auto"`` (issue 11): two copies of one server on port 8000 side by side,
    each on its own leased 127.0.x.y, each reached by name through the gateway."""
    for name in ("a", "b"):
        (hp.root / name).mkdir()
        (hp.root / name / "index.html").write_text(f"copy {name}")
    hp.write(
        f"""
        [project]
        name = "twins"

        [services.a]
        cmd = "exec {PY} -m http.server 8000 --bind $HOST"
        cwd = "a"
        address = "auto"
        [services.b]
        cmd = "exec {PY} -m http.server 8000 --bind $HOST"
        cwd = "b"
        address = "auto"
        env = {{ PEER = "${{a.host}}:${{a.port}}" }}
        """
    )
    up = hp.json("up", "-d")
    assert up["ok"] is True, up
    s = {x["name"]: x for x in up["project"]["services"]}
    assert s["a"]["port"] == s["b"]["port"] == 8000
    hosts = {s["a"]["address"], s["b"]["address"]}
    assert len(hosts) == 2
    assert all(h.startswith("127.") and h != "127.0.0.1" for h in hosts)
    for name in ("a", "b"):
        status, body = get(hp.port, f"{name}.twins.localhost:{hp.port}", "/index.html")
        assert (status, body) == (200, f"copy {name}")
    bad = hp.run("config", check=False)
    assert bad.returncode == 0
    hp.json("down")


def test_a_bad_address_names_its_key(hp: Homeport) -> None:
    hp.write(
        """
        [services.web]
        cmd = "true"
        address = "10.0.0.5"
        """
    )
    done = hp.run("config", check=False)
    assert done.returncode == 2
    assert "services.web.address" in done.stderr
    assert "127.0.0.0/8" in done.stderr
