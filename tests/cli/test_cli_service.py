"""``homeport service``: the unit files it renders, checked by systemd's own parser
(``systemd-analyze verify``), install/uninstall against a temporary HOME, and, where this
machine can start a throwaway systemd user instance, a real enable-and-run.

Which of the two was done shows in the test names and their skip reasons:
``test_unit_runs_under_a_throwaway_systemd_user_instance`` needs ``systemd --user`` to start
in a private runtime dir (it cannot in a container without systemd as PID 1), and
``test_rendered_units_pass_systemd_analyze_verify`` validates the files either way."""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from homeport import __version__
from homeport.cli import service
from homeport.daemon import units

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    # No systemctl on PATH: the real user manager (on a machine that has one) must not be
    # asked to enable a unit in this temporary HOME. The throwaway-instance test asks its own.
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    return h


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_dry_run_prints_the_unit_and_writes_nothing(home: Path, cli: Any) -> None:
    r = cli("service", "install", "--dry-run", "--manager", "systemd")
    assert r.status == 0, r.stderr
    assert "[Service]" in r.stdout
    assert f"ExecStart={service.homeport_exe()} up" in r.stdout
    assert "Restart=on-failure" in r.stdout
    assert "StandardError=journal" in r.stdout
    assert "would run: systemctl --user enable --now homeport.service" in r.stdout
    assert listing(home) == []


def test_install_is_idempotent_and_uninstall_leaves_home_as_it_was(home: Path, cli: Any) -> None:
    before = listing(home)
    first = cli("service", "install", "--json", "--manager", "systemd")
    assert first.status == 0, first.stderr
    data = json.loads(first.stdout)
    unit = home / ".config/systemd/user/homeport.service"
    assert data["files"] == [{"path": str(unit), "changed": True}]
    text = unit.read_text()
    assert f"(homeport {__version__})" in text
    assert units.written_by(unit.read_bytes()) == (__version__, service.homeport_exe())
    again = json.loads(cli("service", "install", "--json", "--manager", "systemd").stdout)
    assert again["files"] == [{"path": str(unit), "changed": False}]
    status = cli("service", "status", "--json", "--manager", "systemd")
    st = json.loads(status.stdout)
    assert (st["installed"], st["current"], st["running"]) == (True, True, False)
    assert st["cli_version"] == __version__
    assert status.status == 1  # installed, but no gateway answers
    gone = json.loads(cli("service", "uninstall", "--json", "--manager", "systemd").stdout)
    assert gone["files"] == [{"path": str(unit), "changed": True, "removed": True}]
    assert listing(home) == before
    twice = cli("service", "uninstall", "--manager", "systemd")
    assert twice.status == 0
    assert "not there:" in twice.stdout


def test_launchd_agent_is_a_valid_plist(home: Path, cli: Any) -> None:
    r = cli("service", "install", "--dry-run", "--json", "--manager", "launchd", "--port", "8123")
    assert r.status == 0, r.stderr
    data = json.loads(r.stdout)
    (f,) = data["files"]
    assert f["path"] == str(home / "Library/LaunchAgents/dev.homeport.gateway.plist")
    plist = plistlib.loads(f["content"].encode())
    assert plist["Label"] == "dev.homeport.gateway"
    assert plist["ProgramArguments"] == [service.homeport_exe(), "up", "--port", "8123"]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["EnvironmentVariables"]["HOMEPORT_STATE_DIR"] == os.environ["HOMEPORT_STATE_DIR"]
    assert units.written_by(f["content"].encode()) == (__version__, service.homeport_exe())
    assert data["commands"][-1][:2] == ["launchctl", "bootstrap"]


def test_ports_units_written_to_a_system_dir(home: Path, tmp_path: Path, cli: Any) -> None:
    system = tmp_path / "system"
    user = _some_user()
    args = ("--ports", "80,443", "--run-as", user, "--system-dir", str(system))
    r = cli("service", "install", "--json", "--manager", "systemd", *args)
    assert r.status == 0, r.stderr
    names = sorted(p.name for p in system.iterdir())
    assert names == [f"homeport-{user}-443.socket", f"homeport-{user}-80.socket",
                     f"homeport-{user}.service"]  # fmt: skip
    sock80 = (system / f"homeport-{user}-80.socket").read_text()
    assert "ListenStream=127.0.0.1:80\nListenStream=[::1]:80\n" in sock80
    assert "FileDescriptorName=http\n" in sock80
    assert f"Service=homeport-{user}.service" in sock80
    svc = (system / f"homeport-{user}.service").read_text()
    assert f"User={user}\n" in svc
    assert "NoNewPrivileges=true" in svc
    # A custom directory is for looking at: no manager was asked to do anything.
    assert json.loads(r.stdout)["ran"] == []
    st = cli("service", "status", "--json", "--manager", "systemd", "--system-dir", str(system))
    ports = json.loads(st.stdout)["ports"]
    assert (len(ports["files"]), ports["installed"], ports["active"]) == (2, True, None)
    cli("service", "uninstall", "--manager", "systemd", *args)
    assert list(system.iterdir()) == []


def test_ports_without_root_print_the_one_sudo_command(
    home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    user = _some_user()
    r = cli("service", "install", "--ports", "80,443", "--run-as", user, "--manager", "systemd")
    assert r.status == 3
    assert "need root once" in r.stderr
    expected = f"sudo {service.homeport_exe()} service install --ports 80,443 --run-as {user}"
    assert expected in r.stderr
    assert "--state-dir" in r.stderr


def test_bad_ports_are_usage_errors(home: Path, cli: Any) -> None:
    r = cli("service", "install", "--ports", "80,http", "--dry-run")
    assert r.status == 2
    assert "comma-separated list of ports" in r.stderr


def _some_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _verify(paths: list[Path], env: dict[str, str], *user: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *user, "verify", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_rendered_units_pass_systemd_analyze_verify(home: Path, tmp_path: Path, cli: Any) -> None:
    """Validation by systemd's own unit parser (done on every machine with systemd-analyze,
    whether or not a user instance can run)."""
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    cli("service", "install", "--manager", "systemd")
    unit = home / ".config/systemd/user/homeport.service"
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    done = _verify([unit], env, "--user")
    assert done.returncode == 0, done.stdout + done.stderr
    system = tmp_path / "system"
    user = _some_user()
    cli("service", "install", "--ports", "80,443", "--run-as", user, "--system-dir", str(system))
    done = _verify(sorted(system.iterdir()), env)
    assert done.returncode == 0, done.stdout + done.stderr
    # The check can fail: a unit systemd refuses is reported as such.
    bad = tmp_path / "bad.service"
    bad.write_text(unit.read_text().replace(f"ExecStart={service.homeport_exe()}", "ExecStart=up"))
    assert _verify([bad], env, "--user").returncode != 0


@pytest.fixture
def user_instance(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A throwaway ``systemd --user`` with its own runtime and config dirs."""
    exe = next((p for p in ("/lib/systemd/systemd", "/usr/lib/systemd/systemd") if
                Path(p).exists()), None)  # fmt: skip
    if exe is None:
        pytest.skip("systemd is not installed")
    runtime, config = tmp_path / "rt", tmp_path / "home/.config"
    runtime.mkdir(mode=0o700)
    config.mkdir(parents=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(tmp_path / "home")}
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    proc = subprocess.Popen([exe, "--user"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    private = runtime / "systemd/private"
    deadline = time.monotonic() + 15
    while not private.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # bounded: waiting for the manager's socket to appear
    if not private.exists():
        proc.kill()
        proc.wait()
        pytest.skip(
            "cannot start a throwaway systemd user instance here (needs systemd as PID 1 "
            "and a delegated cgroup): the unit was validated by systemd-analyze verify instead"
        )
    try:
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_unit_runs_under_a_throwaway_systemd_user_instance(
    user_instance: dict[str, str], free_port_factory: Callable[[], int], tmp_path: Path
) -> None:
    port = free_port_factory()
    env = {**user_instance, "HOMEPORT_STATE_DIR": str(tmp_path / "state")}
    exe = service.homeport_exe()

    def hp(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *argv], env=env, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip

    done = hp("service", "install", "--port", str(port), "--json")
    assert done.returncode == 0, done.stderr
    assert all(r["status"] == 0 for r in json.loads(done.stdout)["ran"]), done.stdout
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)  # bounded connect loop
    status = json.loads(hp("service", "status", "--json").stdout)
    assert (status["enabled"], status["active"], status["running"]) == (True, True, True)
    assert status["version_matches"] is True
    assert hp("service", "uninstall").returncode == 0
    assert not (Path(env["HOME"]) / ".config/systemd/user/homeport.service").exists()


def test_no_login_service_on_other_platforms(
    home: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    r = cli("service", "install", "--dry-run")
    assert r.status == 3
    assert "no login service for win32" in r.stderr
