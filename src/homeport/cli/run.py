"""Run a dev server on a free port and reach it by name: http://NAME.localhost:62893.

homeport picks a free port (outside the ephemeral range, leased so parallel runs never
collide), sets PORT, HOST=127.0.0.1 and HOMEPORT_URL, adds the port flags of servers that
ignore PORT (uvicorn, gunicorn, flask run, manage.py runserver, python -m http.server, vite,
next dev, astro dev, webpack serve), starts the command in its own process group, waits until
it listens, and prints its URL. Output streams with a "NAME |" prefix. A command that ignores
PORT (``npm run dev`` on vite) is found on the port its process group listens on instead.

Ctrl-C (or the command exiting) stops the whole group (SIGTERM, then SIGKILL), removes the
route and exits with the command's status. If this process is killed, the gateway stops the
group for it: nothing is left holding a port. The gateway is started when it is not running.

--own-address: the service gets a loopback address of its own (a lease, see homeport addr)
and keeps its port: --port P, else the framework's default (http.server/uvicorn/gunicorn/
manage.py 8000, flask 5000, vite 5173, next 3000, astro 4321, webpack 8080, redis-server
6379, postgres 5432). HOST is that address and the framework's address flag points at it, so
two branches of one app both serve on 8000 side by side; the route targets ADDR:PORT, and
homeport hosts sync makes NAME.localhost resolve to ADDR for every client. A service that
ignores HOST and listens on 0.0.0.0 or :: is reported, with the flag that fixes it.

examples:
  homeport run -- python -m http.server          NAME is this folder's name
  homeport run --own-address --name a -- python -m http.server 8000
                                                 127.0.x.y:8000, beside another one on 8000
  homeport run --name api -- uvicorn app:app --reload
  homeport run --name web -- npx vite
  homeport run --name admin --auth token -- python manage.py runserver
  homeport run --port 8000 -- ./server --listen 127.0.0.1:8000   a command with its own port
  homeport run --name api --auth basic:me -- npx vite         asks for the password twice
  homeport run --name api --allow-origin http://localhost:5173 -- uvicorn app:app
                                      a frontend served elsewhere may POST to this API

Cross-site protection is on: writes and WebSocket handshakes from pages of another site are
refused (see `homeport route --help` for the same-site rule and the flags).

--auth basic:USER takes the password from $HOMEPORT_AUTH_PASSWORD when it is set (for scripts:
``read -rs P; HOMEPORT_AUTH_PASSWORD=$P homeport run --auth basic:me -- CMD``), else asks on
the terminal; the variable is removed before CMD starts, so CMD never sees it. Prefer it to
basic:USER:PASS: this process lives as long as CMD, and ``ps`` shows its command line to every
user on the machine all that time.

--json: one JSON object per line instead of prefixed text:
  {"event": "ready", "name", "url", "port", "pid", "address", "service_id", "token",
   "ignored_port": null or the port it was given but did not use,
   "own_address": null or the leased address, "bind_warning": null or what it does wrong}
  {"event": "output", "line"}
  {"event": "exit", "code", "status"}
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from typing import TYPE_CHECKING

from homeport.cli.env import Env
from homeport.cli.route import add_site_arguments
from homeport.daemon.routes import AUTH_HELP

if TYPE_CHECKING:
    from homeport.daemon.client import Client
    from homeport.services.runner import Ready, RunOptions

HELP = "run a dev server on a free port as NAME.localhost"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="route name (default: this folder's name)")
    parser.add_argument("--port", type=int, help="the port the command listens on (default: pick)")
    parser.add_argument(
        "--own-address",
        action="store_true",
        help="listen on a leased 127.0.x.y of its own, keeping its (default) port",
    )
    parser.add_argument("--auth", help=AUTH_HELP)
    add_site_arguments(parser)
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the command to listen (60)"
    )
    parser.add_argument(
        "--grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL on stop (5)"
    )
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.daemon.client import connect
    from homeport.daemon.routes import name_from_folder, normalize_name, normalize_origins
    from homeport.errors import UsageError
    from homeport.services.password import auth_from_flag
    from homeport.services.runner import RunOptions

    cmd = tuple(args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd)
    if not cmd:
        raise UsageError("nothing to run; use: homeport run [--name NAME] -- CMD ARGS")
    name = args.name or name_from_folder(os.path.basename(os.getcwd()))
    normalize_name(name)
    if args.port is not None and not 0 < args.port < 65536:
        raise UsageError(f"port {args.port} is out of range; use 1-65535")
    auth = auth_from_flag(args.auth, env)  # before any child (gateway or CMD) starts
    opts = RunOptions(
        cmd=cmd,
        name=name.removesuffix(".localhost"),
        port=args.port,
        auth=auth,
        same_origin=args.same_origin,
        allow_cross_site=args.allow_cross_site,
        allow_origins=tuple(normalize_origins(args.allow_origin)),
        timeout=args.timeout,
        grace=args.grace,
    )
    if args.own_address:
        opts = _own_address(opts)
    return _run(opts, connect(start=True), env, args.json)


def _own_address(opts: RunOptions) -> RunOptions:
    """Lease the address (held by this process while it runs) and fix the port: --port,
    else the framework's default, else a picked one."""
    from dataclasses import replace

    from homeport.ports.address import lease_address
    from homeport.services.flags import default_port

    port = opts.port or default_port(opts.cmd) or _pick(opts.name)
    address = lease_address(f"{opts.name}.localhost", port=port)
    return replace(opts, port=port, address=str(address))


def _run(opts: RunOptions, client: Client, env: Env, as_json: bool) -> int:
    from homeport.services.runner import ExitedEarly, Runner, Stop, exit_status, stop_signals

    lock = threading.Lock()

    def emit(text: str) -> None:
        with lock:
            if as_json:
                line = text.split(" | ", 1)[1] if " | " in text else text
                env.out(json.dumps({"event": "output", "line": line}))
            else:
                env.out(text)
            env.stdout.flush()

    runner = Runner(opts, client, emit)
    code: int | None = None
    said = False
    try:
        with stop_signals():
            port = opts.port or _pick(opts.name)
            ready = runner.start(port)
            _announce(env, ready, opts, as_json, lock)
            code = runner.wait()
    except (KeyboardInterrupt, Stop):
        runner.interrupted = True
    except ExitedEarly as exc:
        env.err(f"homeport: {opts.name}: {exc.message}")
        code, said = exc.code, True
    finally:
        closed = runner.close()
        code = closed if code is None else code
        if opts.address is not None:  # the name keeps its address for next time
            from homeport.ports.address import release_address

            release_address(opts.address, holder_pid=os.getpid())
    status = 130 if runner.interrupted else exit_status(code)
    if as_json:
        env.out(json.dumps({"event": "exit", "code": code, "status": status}))
    elif not runner.interrupted and not said:
        env.err(f"homeport: {opts.name} exited with code {code}")
    return status


def _pick(name: str) -> int:
    from homeport.ports import free_port

    return free_port(name=name)


def _announce(
    env: Env, ready: Ready, opts: RunOptions, as_json: bool, lock: threading.Lock
) -> None:
    name, own = opts.name, opts.address
    with lock:
        if as_json:
            env.out(
                json.dumps(
                    {
                        "event": "ready",
                        "name": name,
                        "url": ready.url,
                        "port": ready.port,
                        "pid": ready.pid,
                        "address": ready.address,
                        "service_id": ready.service_id,
                        "token": ready.token,
                        "ignored_port": ready.ignored_port,
                        "own_address": own,
                        "bind_warning": ready.bind_warning,
                    }
                )
            )
        else:
            env.out(f"homeport: {name} is at {ready.url}  (port {ready.port}, pid {ready.pid})")
            if ready.ignored_port is not None:
                env.out(
                    f"homeport: note: it ignored PORT={ready.ignored_port}; routing to the port"
                    f" it listens on ({ready.port})"
                )
            if own:
                env.out(f"homeport: {name} has its own address {own}:{ready.port}")
            if ready.bind_warning:
                env.err(f"homeport: warning: {name}: {ready.bind_warning}")
            if ready.token:
                env.out(f"homeport: token {ready.token}  ({ready.url}/?homeport_token=...)")
        env.stdout.flush()
