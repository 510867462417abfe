"""Start a project's stack (in a folder with homeport.toml), or else the homeport gateway.

In a project (homeport.toml, or [tool.homeport] in pyproject.toml, here or in a parent
folder), the daemon (started when needed) brings the services up in dependency order,
independent ones in parallel, each once what it needs is ready; progress per service, then a
table of URLs (SERVICE.PROJECT.localhost), then every service's output until Ctrl-C, which
stops the stack.

  homeport up                 the whole stack, in the foreground
  homeport up -d              bring it up and return (exit 1 if a service did not get ready)
  homeport up api             api and what it depends on
  homeport up --profile test  with [profiles.test] applied
  homeport up --json -d       {"project": {... as homeport ps --json}, "ok": true}

Without a project file, ``homeport up`` starts the gateway:

The gateway listens on 127.0.0.1:62893 and [::1]:62893 (``--port`` or HOMEPORT_PORT to change).
It keeps routes, services and the access log in SQLite under the state directory, so a
restart (even after ``kill -9``) restores every route. One gateway runs per user.

examples:
  homeport up                 run in the foreground; Ctrl-C stops it
  homeport up -d              start in the background and return once it listens
  homeport up -d --port 8080  another port (http://api.localhost:8080)
  homeport up --expose 192.168.1.20 --auth token
                              also listen on a LAN address; every route then needs auth
  homeport up -d --expose 192.168.1.20 --auth basic:me
                              the same with a user name and password (asked twice)
  homeport up -d --https-only http://app.localhost:62893 answers 308 to https://
  homeport up -d --workers auto
                              one gateway process per core (SO_REUSEPORT), one control plane

--workers N (default 1; auto = the cores this process may use) runs the gateway in N processes
on the same addresses: the kernel spreads new connections over them, and the daemon keeps the
routes, the access log, the dashboard and the control API for all of them. A worker that dies
is started again on the same sockets (connections wait in the backlog meanwhile);
``homeport status --json`` lists them under ``workers``. Worth it when the gateway's one core
is the limit (homeport status: loop_lag_ms, the daemon's CPU); each worker is ~30 MiB more.

One port serves both schemes: a connection that starts with a TLS handshake gets TLS (HTTP/2
or HTTP/1.1, as the client's ALPN asks), any other plain HTTP/1.1.

--auth basic:USER takes the password from $HOMEPORT_AUTH_PASSWORD when it is set (for scripts:
``read -rs P; HOMEPORT_AUTH_PASSWORD=$P homeport up -d --auth basic:me``), else asks on the
terminal; no child inherits the variable. basic:USER:PASS works too, with a warning: ``ps``
shows every command line to every user. With -d, the value reaches the background daemon
through a pipe, never its command line or environment.

Socket activation: when a service manager passes listening sockets the systemd way (fd 3 on,
``LISTEN_FDS``, ``LISTEN_PID``; ``homeport service install --ports 80,443`` sets that up), the
gateway serves those instead of binding, and takes the lowest of their ports as its own.

``homeport run`` and ``homeport route add`` start the gateway on their own when it is not
running, so ``up`` is mostly for choosing options.

--json (with -d) prints what daemon.json holds:
  {"pid": 123, "port": 62893, "url": "http://homeport.localhost:62893", "version": "0.1.0",
   "listen": [["127.0.0.1", 62893], ["::1", 62893]], "started": 1764230000.0,
   "proxy": "proxy" | "control-only", "build": "mypyc" | "python" | "none", "workers": 1}
"""

from __future__ import annotations

import argparse

from homeport.cli.env import Env

HELP = "start a project's stack (homeport.toml), or else the gateway daemon"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from homeport.cli.project import add_file_arguments

    parser.add_argument("services", nargs="*", help="in a project: only these (and their needs)")
    parser.add_argument("-d", "--detach", action="store_true", help="run in the background")
    add_file_arguments(parser)
    parser.add_argument(
        "--gateway", action="store_true", help="start the gateway only, even in a project"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds the stack may take to settle (300)"
    )
    parser.add_argument("--port", type=int, help="port to listen on (default 62893)")
    parser.add_argument(
        "--expose",
        action="append",
        default=[],
        metavar="ADDR",
        help="also listen on this non-loopback address (needs --auth)",
    )
    parser.add_argument(
        "--auth",
        metavar="MODE",
        help="auth for routes without their own: token | basic:USER (password from"
        " $HOMEPORT_AUTH_PASSWORD, else a prompt) | basic:USER:PASS (visible in ps: avoid)",
    )
    parser.add_argument("--no-access-log", action="store_true", help="do not record requests")
    parser.add_argument(
        "--https-only",
        action="store_true",
        help="answer plain http:// requests with a 308 redirect to https:// (same port)",
    )
    parser.add_argument(
        "--workers",
        default="1",
        metavar="N",
        help="gateway processes sharing the port (SO_REUSEPORT): a number, or auto for one"
        " per core (default 1)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    # -d hands --auth to the daemon through this pipe: never on its command line (ps).
    parser.add_argument("--auth-fd", type=int, help=argparse.SUPPRESS)


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.render import dump_json
    from homeport.daemon import process
    from homeport.daemon.client import Client
    from homeport.daemon.config import DaemonConfig
    from homeport.errors import UsageError

    if _project_mode(args):
        from homeport.cli import project_up

        return project_up.run(args, env)
    auth: str | None
    if args.auth_fd is not None:  # the daemon -d started: the value is resolved already
        auth = process.read_auth_fd(args.auth_fd)
    else:
        from homeport.services.password import auth_from_flag

        auth = auth_from_flag(args.auth, env)
    from homeport.daemon import activation

    # Sockets passed the systemd way (LISTEN_FDS): served instead of bound, and their port
    # is the gateway's port (the URLs it prints, the Host names it answers to).
    passed = activation.listen_sockets()
    port = args.port if args.port is not None or not passed else activation.main_port(passed)
    config = DaemonConfig.build(
        port=port,
        expose=tuple(args.expose),
        auth=auth,
        access_log=not args.no_access_log,
        https_only=args.https_only,
        workers=_workers(args.workers),
    )
    if passed and args.detach:
        raise UsageError("-d cannot hand on passed sockets (LISTEN_FDS); run in the foreground")
    if not args.detach:
        from homeport.daemon import main as daemon

        daemon.setup_logging(args.verbose)
        return daemon.run_foreground(config, ready_fd=args.ready_fd, sockets=passed)
    running = Client.for_config(config)
    if running.health() is not None:
        info = process.read_info(config) or {}
        raise process.AlreadyRunning(
            f"already running at {running.url} (pid {info.get('pid', '?')})",
            hint="homeport down stops it",
        )
    info = process.start_background(config)
    if args.json:
        dump_json(env, info)
    else:
        workers = int(info.get("workers") or 1)
        more = f", {workers} gateway processes" if workers > 1 else ""
        env.out(f"homeport gateway at {info['url']} (pid {info['pid']}{more})")
        if info.get("proxy") == "control-only":
            env.out("note: the proxy is not installed; only the control API answers")
    return 0


def _project_mode(args: argparse.Namespace) -> bool:
    if args.gateway or args.ready_fd is not None:
        return False
    if args.services or args.file or args.profile:
        return True
    from homeport.project import find

    return find() is not None


def _workers(text: str) -> int:
    """``--workers``: a count, or ``auto`` for one per core this process may use."""
    from homeport.errors import UsageError

    if text.strip().lower() == "auto":
        from homeport.daemon.workers import cpu_count

        return cpu_count()
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--workers wants a number or auto, not {text!r}") from None
