"""Pure: the service-manager files that keep the gateway running, rendered from a ``UnitSpec``.

- **systemd user unit** (``~/.config/systemd/user/homeport.service``): ``homeport up`` in the
  foreground (the daemon mode a supervisor wants), ``Restart=on-failure``, the state dir in
  the environment, stdout and stderr to the journal (``journalctl --user -u homeport``).
- **launchd agent** (``~/Library/LaunchAgents/dev.homeport.gateway.plist``) on macOS:
  ``RunAtLoad``, ``KeepAlive`` unless it exited cleanly, a log file under ~/Library/Logs.
  Rendered and tested as a file only; not run on a Mac here.
- **ports 80/443** (``--ports``): system socket units, installed once as root, that own
  ``127.0.0.1:P`` and ``[::1]:P`` and hand the listening sockets (``LISTEN_FDS``, see
  ``homeport.daemon.activation``) to a system service that runs the gateway *as the user*
  (``User=``). A system socket cannot activate a unit of the user's own manager (each systemd
  instance passes fds only to its own units), so the gateway on low ports is a system service
  with the user's identity, HOME and state dir; the user unit is then not used. One socket
  unit per port, named ``http``/``https`` (``FileDescriptorName=``), so the gateway can tell
  which fd wants TLS.

Nothing here touches the disk: ``homeport.cli.service`` writes, enables and asks.
"""

from __future__ import annotations

import plistlib
from dataclasses import dataclass

USER_UNIT = "homeport.service"
LAUNCHD_LABEL = "dev.homeport.gateway"
#: Port -> the fd name the gateway sees in LISTEN_FDNAMES.
PORT_NAMES = {80: "http", 443: "https"}


@dataclass(frozen=True, slots=True)
class UnitSpec:
    """What every rendering needs. ``exe`` is the absolute path of the ``homeport`` script."""

    exe: str
    state_dir: str
    version: str
    home: str
    #: ``up --port N`` (None: the default or HOMEPORT_PORT).
    port: int | None = None
    #: PATH for services the daemon starts (the dashboard's start button).
    path: str | None = None
    #: For the system units (``--ports``): the user the gateway runs as.
    user: str | None = None
    group: str | None = None


def quote(value: str) -> str:
    """One systemd word (systemd.syntax(7)): double-quoted, with ``\\``, ``"`` escaped and
    ``%`` doubled (a specifier otherwise)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def _exec(spec: UnitSpec) -> str:
    argv = [spec.exe, "up"]
    if spec.port is not None:
        argv += ["--port", str(spec.port)]
    return " ".join(a if _plain(a) else quote(a) for a in argv)


def _plain(word: str) -> bool:
    return bool(word) and all(c.isalnum() or c in "/._-+:,=@" for c in word)


def _env(spec: UnitSpec) -> list[str]:
    lines = [f"Environment={quote('HOMEPORT_STATE_DIR=' + spec.state_dir)}"]
    if spec.path:
        lines.append(f"Environment={quote('PATH=' + spec.path)}")
    return lines


def _header(spec: UnitSpec) -> str:
    return (
        f"# Written by `homeport service install` (homeport {spec.version}).\n"
        "# `homeport service uninstall` removes it; edits are replaced on the next install.\n"
    )


def user_unit(spec: UnitSpec) -> str:
    """The systemd user unit."""
    return "\n".join(
        [
            _header(spec) + "[Unit]",
            "Description=homeport gateway: NAME.localhost names, dashboard, control API",
            "",
            "[Service]",
            "Type=simple",
            f"ExecStart={_exec(spec)}",
            "Restart=on-failure",
            "RestartSec=2",
            "TimeoutStopSec=20",
            *_env(spec),
            "StandardOutput=journal",
            "StandardError=journal",
            "SyslogIdentifier=homeport",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
    )


def launchd_plist(spec: UnitSpec) -> bytes:
    """The launchd agent (a property list)."""
    argv = [spec.exe, "up"] + (["--port", str(spec.port)] if spec.port is not None else [])
    # A plist has no comments: the version that wrote it rides in the environment.
    env = {"HOMEPORT_STATE_DIR": spec.state_dir, "HOMEPORT_SERVICE_VERSION": spec.version}
    if spec.path:
        env["PATH"] = spec.path
    log = f"{spec.home}/Library/Logs/homeport.log"
    return plistlib.dumps(
        {
            "Label": LAUNCHD_LABEL,
            "ProgramArguments": argv,
            "EnvironmentVariables": env,
            "RunAtLoad": True,
            # Restart when it fails, not when it was stopped on purpose (Restart=on-failure).
            "KeepAlive": {"SuccessfulExit": False},
            "ThrottleInterval": 2,
            "StandardOutPath": log,
            "StandardErrorPath": log,
        }
    )


def written_by(content: bytes) -> tuple[str | None, str | None]:
    """(homeport version, executable) an installed unit or plist was written with."""
    if content.startswith(b"<?xml"):
        try:
            data = plistlib.loads(content)
            env, argv = data.get("EnvironmentVariables", {}), data.get("ProgramArguments", [])
            return env.get("HOMEPORT_SERVICE_VERSION"), (argv[0] if argv else None)
        except (plistlib.InvalidFileException, ValueError, AttributeError, TypeError):
            return None, None
    text = content.decode(errors="replace")
    version = exe = None
    for line in text.splitlines():
        if line.startswith("# Written by `homeport service install` (homeport "):
            version = line.rsplit(" ", 1)[-1].rstrip(").")
        elif line.startswith("ExecStart="):
            first = line.removeprefix("ExecStart=").split(" up", 1)[0]
            exe = first.strip('"').replace("%%", "%")
    return version, exe


def port_unit_names(user: str, ports: tuple[int, ...]) -> tuple[str, list[str]]:
    """(service unit, socket units) for ``user``'s gateway on ``ports``."""
    return f"homeport-{user}.service", [f"homeport-{user}-{p}.socket" for p in ports]


def port_units(spec: UnitSpec, ports: tuple[int, ...]) -> dict[str, str]:
    """File name (under /etc/systemd/system) -> text, for ``--ports``."""
    if spec.user is None:
        raise ValueError("the system units need the user the gateway runs as")
    service, sockets = port_unit_names(spec.user, ports)
    out: dict[str, str] = {}
    listed = ", ".join(str(p) for p in ports)
    for port, name in zip(ports, sockets, strict=True):
        out[name] = "\n".join(
            [
                _header(spec) + "[Unit]",
                f"Description=homeport gateway port {port} for {spec.user}",
                "",
                "[Socket]",
                f"ListenStream=127.0.0.1:{port}",
                f"ListenStream=[::1]:{port}",
                # Two sockets, one per family: [::1] must not also take IPv4.
                "BindIPv6Only=ipv6-only",
                f"FileDescriptorName={PORT_NAMES.get(port, f'port{port}')}",
                "Backlog=4096",
                "NoDelay=true",
                f"Service={service}",
                "",
                "[Install]",
                "WantedBy=sockets.target",
                "",
            ]
        )
    out[service] = "\n".join(
        [
            _header(spec) + "[Unit]",
            f"Description=homeport gateway for {spec.user} on ports {listed}",
            f"Requires={' '.join(sockets)}",
            f"After={' '.join(sockets)}",
            "",
            "[Service]",
            "Type=simple",
            f"User={spec.user}",
            *([f"Group={spec.group}"] if spec.group else []),
            f"ExecStart={_exec(spec)}",
            f"Environment={quote('HOME=' + spec.home)}",
            *_env(spec),
            "Restart=on-failure",
            "RestartSec=2",
            "TimeoutStopSec=20",
            # The sockets are bound by systemd as root; the gateway needs no privilege at all.
            "NoNewPrivileges=true",
            "StandardOutput=journal",
            "StandardError=journal",
            "SyslogIdentifier=homeport",
            "",
        ]
    )
    return out
