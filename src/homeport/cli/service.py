"""Keep the gateway running: start it at login and restart it when it fails.

  homeport service install     a systemd user unit (Linux) or a launchd agent (macOS) that
                               runs `homeport up`, enabled and started now
  homeport service status      installed? current? enabled? running? the same version?
  homeport service uninstall   stop it and remove the file

Every step is idempotent: installing twice changes nothing the second time, uninstalling
what is not installed is not an error. --dry-run prints the files and the commands instead.

Linux: ~/.config/systemd/user/homeport.service, `Restart=on-failure`, the state dir in its
environment, logs in the journal (`journalctl --user -u homeport -f`). To keep it running
after logout too: `loginctl enable-linger $USER`.
macOS: ~/Library/LaunchAgents/dev.homeport.gateway.plist (RunAtLoad, KeepAlive unless it
exited cleanly), logs in ~/Library/Logs/homeport.log. Rendered and tested as a file; not
run on a Mac by homeport's own tests.

Ports 80 and 443 (http://api.localhost, no port to remember), without running homeport as
root: `homeport service install --ports 80,443` writes systemd *system* socket units that
own 127.0.0.1:80, [::1]:80 (and 443) and hand the listening sockets to a system service that
runs the gateway as you (socket activation, LISTEN_FDS). That needs root once; run as you,
it prints the one sudo command. The user unit is not used then (one gateway per user).
Where systemd is absent, the alternatives and their costs:
  sudo sysctl -w net.ipv4.ip_unprivileged_port_start=80
      (persist in /etc/sysctl.d/): any user's program may then bind 80 and above
  sudo setcap cap_net_bind_service=+ep /path/to/a/dedicated/binary
      only on a binary that runs nothing else, never on the Python interpreter: every
      Python script on the machine would get the privilege
`homeport doctor` says which of these is in place.

examples:
  homeport service install
  homeport service install --dry-run          print the unit and the commands only
  homeport service status --json
  homeport service install --ports 80,443     as root (or it prints the sudo command)
  homeport service uninstall --ports 80,443

--json shapes:
  install/uninstall: {"manager": "systemd"|"launchd", "dry_run", "files": [{"path",
      "changed", "content" (with --dry-run)}], "commands": [[argv]], "ran": [{"argv",
      "status", "output"}], "manager_reachable", "notes": [str]}
  status: {"manager", "path", "installed", "current", "enabled", "active", "running",
      "daemon_version", "cli_version", "version_matches",
      "ports": {"files", "installed", "active" (null when systemd cannot be asked)}}
status exits 0 when installed, running and the same version as this CLI, else 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from homeport.cli.env import Env

HELP = "start the gateway at login (systemd user unit / launchd agent), ports 80/443"
MANAGERS = ("systemd", "launchd")
SYSTEM_DIR = Path("/etc/systemd/system")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="service_cmd", metavar="install|uninstall|status")
    inst = sub.add_parser("install", help="install, enable and start the login service")
    uninst = sub.add_parser("uninstall", help="stop the login service and remove its file")
    status = sub.add_parser("status", help="installed, enabled, running, same version?")
    for p in (inst, uninst, status):
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument(
            "--manager", choices=MANAGERS, help="systemd or launchd (default: this platform's)"
        )
        p.add_argument("--ports", metavar="80,443", help="the system socket units for ports")
        p.add_argument("--run-as", metavar="USER", help="with --ports: the gateway's user")
        # Where the files go; tests point these at temporary directories.
        p.add_argument("--system-dir", type=Path, default=SYSTEM_DIR, help=argparse.SUPPRESS)
    for p in (inst, uninst):
        p.add_argument("--dry-run", action="store_true", help="print, change nothing")
    inst.add_argument("--port", type=int, help="the gateway's port (`up --port`)")
    inst.add_argument("--state-dir", type=Path, help="with --ports: the user's state dir")


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.errors import UsageError

    cmd = args.service_cmd
    if cmd is None:
        raise UsageError("say what to do: homeport service install|uninstall|status")
    ports = _parse_ports(args.ports) if args.ports else ()
    if cmd == "status":
        return _status(args, env, ports)
    if ports:
        plan = _ports_plan(args, ports, install=cmd == "install")
    else:
        plan = _user_plan(args, install=cmd == "install")
    return _apply(plan, args, env)


# -- what to do --------------------------------------------------------------------------------


@dataclass
class Plan:
    manager: str
    writes: dict[Path, bytes] = field(default_factory=dict)
    removes: list[Path] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)
    #: The manager to ask (``systemctl --user``, ``systemctl``, ``launchctl``) and whether
    #: it answers here; commands are skipped, with a note, when it does not.
    reachable: tuple[bool, str] = (True, "")
    notes: list[str] = field(default_factory=list)
    #: After removing, also remove the parents install created when they are left empty
    #: (up to, not including, this directory): uninstall leaves HOME as it found it.
    prune_up_to: Path | None = None


def _parse_ports(text: str) -> tuple[int, ...]:
    from homeport.errors import UsageError

    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 0 < int(part) < 65536:
            raise UsageError(f"--ports {text!r}: a comma-separated list of ports, e.g. 80,443")
        if int(part) not in out:
            out.append(int(part))
    return tuple(out)


def _manager(args: argparse.Namespace) -> str:
    from homeport.errors import UnsupportedPlatform

    if args.manager:
        return str(args.manager)
    if sys.platform == "darwin":
        return "launchd"
    if sys.platform.startswith("linux"):
        return "systemd"
    raise UnsupportedPlatform(f"no login service for {sys.platform}: run `homeport up -d`")


def homeport_exe() -> str:
    """The absolute path of the ``homeport`` script this CLI runs from."""
    from homeport.errors import EnvironmentProblem

    beside = Path(sys.executable).with_name("homeport")
    if beside.exists():
        return str(beside.absolute())
    found = shutil.which("homeport")
    if found:
        return os.path.abspath(found)
    raise EnvironmentProblem(
        "cannot find the homeport executable to run from the service",
        hint="install homeport so that `homeport` is on PATH (pipx install homeport)",
    )


def user_unit_path(manager: str) -> Path:
    if manager == "launchd":
        from homeport.daemon.units import LAUNCHD_LABEL

        return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user" / "homeport.service"


def _spec(port: int | None = None, **extra: Any) -> Any:
    from homeport import __version__
    from homeport.daemon.units import UnitSpec
    from homeport.paths import state_dir

    fields: dict[str, Any] = {
        "exe": homeport_exe(),
        "state_dir": str(state_dir(create=False)),
        "version": __version__,
        "home": str(Path.home()),
        "port": port,
        "path": os.environ.get("PATH"),
    }
    fields.update(extra)
    return UnitSpec(**fields)


def _render_user(manager: str, port: int | None) -> bytes:
    from homeport.daemon import units

    spec = _spec(port)
    if manager == "launchd":
        return units.launchd_plist(spec)
    return units.user_unit(spec).encode()


def _user_plan(args: argparse.Namespace, *, install: bool) -> Plan:
    manager = _manager(args)
    path = user_unit_path(manager)
    plan = Plan(manager, reachable=_reachable(manager, user=True))
    if manager == "launchd":
        domain = f"gui/{os.getuid()}"
        if install:
            plan.writes[path] = _render_user(manager, args.port)
            plan.commands = [
                ["launchctl", "bootout", f"{domain}/dev.homeport.gateway"],
                ["launchctl", "bootstrap", domain, str(path)],
            ]
        else:
            plan.commands = [["launchctl", "bootout", f"{domain}/dev.homeport.gateway"]]
            plan.removes.append(path)
        return plan
    ctl = ["systemctl", "--user"]
    if install:
        plan.writes[path] = _render_user(manager, args.port)
        plan.commands = [[*ctl, "daemon-reload"], [*ctl, "enable", "--now", "homeport.service"]]
        # A running gateway started by hand holds the lock: the unit's would fail and retry.
        plan.notes.append("a gateway started with `homeport up -d` should be stopped first")
    else:
        plan.commands = [[*ctl, "disable", "--now", "homeport.service"]]
        plan.removes.append(path)
        plan.commands.append([*ctl, "daemon-reload"])
        plan.prune_up_to = Path.home()
    return plan


def _ports_plan(args: argparse.Namespace, ports: tuple[int, ...], *, install: bool) -> Plan:
    import grp
    import pwd

    from homeport.daemon import units
    from homeport.errors import EnvironmentProblem, UsageError

    if _manager(args) != "systemd":
        raise EnvironmentProblem(
            "--ports needs systemd; on macOS run the gateway on its own port",
            hint="or see `homeport service --help` for the sysctl and setcap alternatives",
        )
    user = args.run_as or os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise UsageError(f"--run-as {user!r}: no such user") from None
    state = getattr(args, "state_dir", None) or Path(entry.pw_dir) / ".local/state/homeport"
    if os.geteuid() != 0 and not args.dry_run and args.system_dir == SYSTEM_DIR:
        verb = "install" if install else "uninstall"
        again = [homeport_exe(), "service", verb, "--ports", ",".join(map(str, ports))]
        again += ["--run-as", user] + (["--state-dir", str(state)] if install else [])
        raise EnvironmentProblem(
            f"system socket units for ports {args.ports} need root once",
            hint="run: sudo " + " ".join(_shell_word(w) for w in again),
        )
    spec = _spec(
        None,
        state_dir=str(state),
        home=entry.pw_dir,
        user=user,
        group=grp.getgrgid(entry.pw_gid).gr_name,
    )
    files = units.port_units(spec, ports)
    service, sockets = units.port_unit_names(user, ports)
    custom = args.system_dir != SYSTEM_DIR  # files for a look or a test: ask no manager
    reach = (
        (False, f"{args.system_dir} is not systemd's")
        if custom
        else _reachable("systemd", user=False)
    )
    plan = Plan("systemd", reachable=reach)
    if install:
        plan.writes = {args.system_dir / name: text.encode() for name, text in files.items()}
        plan.commands = [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", *sockets]]
        plan.notes.append(
            f"the gateway now runs as the system service {service}; {user}'s own user unit"
            " (if installed) should go: `homeport service uninstall` as that user"
        )
    else:
        plan.commands = [["systemctl", "disable", "--now", *sockets, service]]
        plan.removes = [args.system_dir / name for name in files]
        plan.commands.append(["systemctl", "daemon-reload"])
    return plan


def _shell_word(word: str) -> str:
    import shlex

    return shlex.quote(word)


def _reachable(manager: str, *, user: bool) -> tuple[bool, str]:
    """Does the service manager answer here? (A container has systemctl but no systemd.)"""
    tool = "launchctl" if manager == "launchd" else "systemctl"
    if shutil.which(tool) is None:
        return False, f"{tool} is not installed"
    if manager == "launchd":
        return True, ""
    argv = ["systemctl", *(["--user"] if user else []), "is-system-running"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    state = (done.stdout or done.stderr).strip()
    # is-system-running exits non-zero for "degraded" too; only "offline"/no bus is absent.
    if state in ("", "offline") or "Failed to connect" in state or "No medium" in state:
        which = "the systemd user manager" if user else "systemd"
        return False, f"{which} is not reachable here ({state or 'no answer'})"
    return True, ""


# -- doing it ----------------------------------------------------------------------------------


def _apply(plan: Plan, args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.render import dump_json

    files: list[dict[str, Any]] = []
    for path, content in plan.writes.items():
        changed = _read(path) != content
        entry: dict[str, Any] = {"path": str(path), "changed": changed}
        if args.dry_run:
            entry["content"] = content.decode()
        elif changed:
            _write(path, content)
        files.append(entry)
    for path in plan.removes:
        exists = path.exists()
        files.append({"path": str(path), "changed": exists, "removed": True})
        if exists and not args.dry_run:
            path.unlink()
            _prune(path.parent, plan.prune_up_to)
    ran: list[dict[str, Any]] = []
    reachable, why = plan.reachable
    if not reachable:
        plan.notes.append(f"{why}: not run: " + "; ".join(" ".join(c) for c in plan.commands))
    elif not args.dry_run:
        ran = [_run(argv) for argv in plan.commands]
    data = {
        "manager": plan.manager,
        "dry_run": args.dry_run,
        "files": files,
        "commands": plan.commands,
        "ran": ran,
        "manager_reachable": reachable,
        "notes": plan.notes,
    }
    if args.json:
        dump_json(env, data)
    else:
        _render_apply(env, data)
    return 0


def _render_apply(env: Env, data: dict[str, Any]) -> None:
    for f in data["files"]:
        if data["dry_run"] and "content" in f:
            env.out(f"# {f['path']}" + ("" if f["changed"] else " (unchanged)"))
            env.out(f["content"].rstrip("\n"))
            env.out()
            continue
        verb = "removed" if f.get("removed") else "wrote"
        if not f["changed"]:
            verb = "not there:" if f.get("removed") else "unchanged:"
        prefix = "would have " if data["dry_run"] and f["changed"] else ""
        env.out(f"{prefix}{verb} {f['path']}")
    for argv in data["commands"]:
        if data["dry_run"]:
            env.out("would run: " + " ".join(argv))
    for r in data["ran"]:
        mark = "ok" if r["status"] == 0 else f"exit {r['status']}"
        env.out(
            f"ran: {' '.join(r['argv'])} ({mark})" + (f": {r['output']}" if r["output"] else "")
        )
    for note in data["notes"]:
        env.out(f"note: {note}")


def _prune(directory: Path, stop: Path | None) -> None:
    if stop is None:
        return
    while directory != stop and stop in directory.parents:
        try:
            directory.rmdir()  # only when empty
        except OSError:
            return
        directory = directory.parent


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _write(path: Path, content: bytes) -> None:
    from homeport.errors import EnvironmentProblem

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(content)
        tmp.chmod(0o644)
        os.replace(tmp, path)  # a manager reading it never sees half a file
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write {path}: {exc.strerror}") from exc


def _run(argv: list[str]) -> dict[str, Any]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"argv": argv, "status": -1, "output": str(exc)}
    out = (done.stdout + done.stderr).strip()
    return {"argv": argv, "status": done.returncode, "output": out[-500:]}


# -- status ------------------------------------------------------------------------------------


def _status(args: argparse.Namespace, env: Env, ports: tuple[int, ...]) -> int:
    from homeport import __version__
    from homeport.cli.render import dump_json
    from homeport.daemon.client import Client
    from homeport.daemon.config import DaemonConfig

    manager = _manager(args)
    path = user_unit_path(manager)
    content = _read(path)
    health = Client.for_config(DaemonConfig.build()).health()
    enabled, active = _manager_state(manager, _reachable(manager, user=True)[0])
    daemon_version = health.get("version") if health else None
    port_files = (
        sorted(args.system_dir.glob("homeport-*.socket")) if args.system_dir.is_dir() else []
    )
    data = {
        "manager": manager,
        "path": str(path),
        "installed": content is not None,
        "current": _current(content),
        "enabled": enabled,
        "active": active,
        "running": health is not None,
        "daemon_version": daemon_version,
        "cli_version": __version__,
        "version_matches": None if daemon_version is None else daemon_version == __version__,
        "ports": {
            "files": [str(p) for p in port_files],
            "installed": bool(port_files),
            "active": _sockets_active(args, port_files),
        },
    }
    if args.json:
        dump_json(env, data)
    else:
        _render_status(env, data)
    good = (content is not None or bool(port_files)) and health is not None
    return 0 if good and data["version_matches"] else 1


def _current(content: bytes | None) -> bool:
    """Written by this version for this executable? (Not a byte comparison: the PATH in it
    is the one of the shell that installed it.)"""
    from homeport import __version__
    from homeport.daemon.units import written_by

    return content is not None and written_by(content) == (__version__, homeport_exe())


def _sockets_active(args: argparse.Namespace, files: list[Path]) -> bool | None:
    """Are the port socket units listening? None when systemd cannot be asked here."""
    if not files or args.system_dir != SYSTEM_DIR or not _reachable("systemd", user=False)[0]:
        return None
    return all(_run(["systemctl", "is-active", f.name])["output"] == "active" for f in files)


def _manager_state(manager: str, reachable: bool) -> tuple[bool | None, bool | None]:
    """(enabled, active) from the manager; None where it cannot say."""
    if not reachable:
        return None, None
    if manager == "launchd":
        r = _run(["launchctl", "print", f"gui/{os.getuid()}/dev.homeport.gateway"])
        return r["status"] == 0, "state = running" in r["output"]
    enabled = _run(["systemctl", "--user", "is-enabled", "homeport.service"])
    active = _run(["systemctl", "--user", "is-active", "homeport.service"])
    return enabled["output"] == "enabled", active["output"] == "active"


def _render_status(env: Env, d: dict[str, Any]) -> None:
    def yn(v: bool | None) -> str:
        return "unknown" if v is None else ("yes" if v else "no")

    where = d["path"] if d["installed"] else f"not installed ({d['path']})"
    env.out(
        f"{d['manager']} unit: {where}"
        + (
            ""
            if d["current"] or not d["installed"]
            else " (differs from this version's: reinstall)"
        )
    )
    env.out(f"enabled: {yn(d['enabled'])}   active: {yn(d['active'])}")
    if d["running"]:
        same = "same as" if d["version_matches"] else "differs from"
        env.out(f"gateway: running, version {d['daemon_version']} ({same} this CLI's "
                f"{d['cli_version']})")  # fmt: skip
    else:
        env.out("gateway: not running")
    if d["ports"]["installed"]:
        active = d["ports"]["active"]
        state = "" if active is None else ("  (listening)" if active else "  (not active)")
        env.out("ports: " + ", ".join(d["ports"]["files"]) + state)
