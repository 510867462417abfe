"""Name a local service: NAME.localhost -> a port, for services homeport did not start
(containers, databases, an app started elsewhere). ``homeport run`` adds routes by itself.

examples:
  homeport route add api 3000                    http://api.localhost:62893 -> 127.0.0.1:3000
  homeport route add shop http://[::1]:8080 --wildcard
                                                 also x.shop.localhost, y.shop.localhost ...
  homeport route add admin 9000 --auth token     prints the token the route wants
  homeport route add app 5173 --auth basic:me --same-origin
                                                 asks for me's password twice
  homeport route add api 8000 --allow-origin http://localhost:5173
                                                 a page on localhost:5173 may POST to api
  homeport route add sock unix:/run/app.sock
  homeport route add db 5432 --tcp               db.localhost gets its own 127.0.x.y; the
                                                 gateway forwards ADDR:5432 -> 127.0.0.1:5432
  homeport route rm api
  homeport route ls [--json]

TARGET is PORT, :PORT, HOST:PORT, http://HOST:PORT (HOST on loopback: 127.0.0.1, [::1],
localhost) or unix:/PATH. NAME gets ``.localhost`` added when it lacks it.
--auth token: clients send ``Authorization: Bearer TOKEN`` or open the URL once with
``?homeport_token=TOKEN``. --auth basic:USER takes the password from $HOMEPORT_AUTH_PASSWORD
when it is set (``read -rs P; HOMEPORT_AUTH_PASSWORD=$P homeport route add ...``), else asks on
the terminal; basic:USER:PASS works too, but puts the password where ``ps`` shows it to every
user (a warning says so).

Cross-site protection is on for every route: the gateway refuses a state-changing request
(anything but GET/HEAD/OPTIONS) and a WebSocket handshake that a browser sends from a page of
another site, judged by Sec-Fetch-Site, else by Origin. The site of a name is its last two
labels (the public-suffix default rule makes "localhost" the suffix): web.shop.localhost and
api.shop.localhost are one site (shop.localhost), so a project's frontend may call its own
API; evil.localhost and api.localhost are two. Requests with neither field (curl, scripts,
server to server) pass. --allow-origin ORIGIN (repeatable) lets one origin through,
--allow-cross-site turns the check off, --same-origin makes it stricter (only pages of the
route's own origin). Private Network Access preflights from pages not on loopback are refused
unless the route allows their origin.
Request fields whose name has "_" (X_Forwarded_For) are dropped, as nginx does: CGI, PHP-FPM
and WSGI servers read them as their "-" twins (X-Forwarded-For). --allow-underscores forwards
them to this route's service. The gateway is started when it is not running.

--tcp: for services that do not speak HTTP (PostgreSQL, Redis, gRPC, a debugger) or whose
bind address cannot be set. NAME gets a leased loopback address of its own (homeport addr)
and the gateway listens on ADDR:PORT (PORT: the target's), forwarding raw TCP to TARGET with
back-pressure; each connection shows in the access log with its bytes and duration. Then
``homeport hosts sync`` makes ``psql -h db.localhost`` work for every client.

--json shapes:
  route ls:  {"routes": [{"name", "target", "wildcard", "auth", "same_origin", "allow_hosts",
                          "service_id", "allow_cross_site", "allow_origins",
                          "allow_underscores"}]}
  route add: {"route": {...as above}, "url": "http://api.localhost:62893", "created": true,
              "token": "..." (only with --auth token),
              "listen": "127.0.x.y:5432" and "listen_error": null|TEXT (only with --tcp)}
  route rm:  {"removed": "api.localhost"}
"""

from __future__ import annotations

import argparse

from homeport.cli.env import Env
from homeport.daemon.routes import AUTH_HELP

HELP = "add, remove and list NAME.localhost routes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="route_cmd", metavar="add|rm|ls")
    add = sub.add_parser("add", help="add or replace a route")
    add.add_argument("name", help="api or api.localhost or api.shop")
    add.add_argument("target", help="PORT, HOST:PORT, http://HOST:PORT or unix:/PATH")
    add.add_argument("--auth", help=AUTH_HELP)
    add_site_arguments(add)
    add.add_argument("--wildcard", action="store_true", help="also match *.NAME")
    add.add_argument(
        "--tcp", action="store_true", help="raw TCP on an address of its own (not HTTP)"
    )
    add.add_argument(
        "--allow-underscores",
        action="store_true",
        help='forward request fields whose name has "_" (dropped by default)',
    )
    add.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="another Host name this route accepts",
    )
    rm = sub.add_parser("rm", help="remove a route")
    rm.add_argument("name")
    sub.add_parser("ls", help="list routes")
    for p in (add, rm, *sub.choices.values()):
        if not any(a.dest == "json" for a in p._actions):
            p.add_argument("--json", action="store_true", help="machine-readable output")


def add_site_arguments(parser: argparse.ArgumentParser) -> None:
    """The cross-site flags ``route add`` and ``run`` share."""
    parser.add_argument(
        "--same-origin",
        action="store_true",
        help="stricter: refuse writes and WebSockets from any other origin, same site or not",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let pages of ORIGIN (http://localhost:5173) write and open WebSockets; repeatable",
    )
    parser.add_argument(
        "--allow-cross-site",
        action="store_true",
        help="turn the cross-site refusal off for this route",
    )


def site_body(args: argparse.Namespace) -> dict[str, object]:
    from homeport.daemon.routes import normalize_origins

    return {
        "same_origin": args.same_origin,
        "allow_cross_site": args.allow_cross_site,
        "allow_origins": normalize_origins(args.allow_origin),  # bad input: exit 2 here
    }


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.render import dump_json
    from homeport.daemon.client import connect
    from homeport.daemon.routes import normalize_name, normalize_target, normalize_tcp_target
    from homeport.errors import UsageError
    from homeport.services.password import auth_from_flag

    cmd = args.route_cmd or "ls"
    auth = None
    if cmd == "add":  # validate (and ask) before starting a daemon for nothing
        normalize_name(args.name)
        (normalize_tcp_target if args.tcp else normalize_target)(args.target)
        site_body(args)
        if args.tcp and (args.auth or args.wildcard or args.same_origin):
            raise UsageError(
                "--tcp routes carry raw bytes: --auth, --wildcard, --same-origin are HTTP"
            )
        auth = auth_from_flag(args.auth, env)
    if cmd == "ls":
        return _ls(env, args.json)
    client = connect(start=cmd == "add")
    if cmd == "add":
        body = {
            "name": args.name,
            "target": args.target,
            "auth": auth,
            **site_body(args),
            "wildcard": args.wildcard,
            "allow_hosts": args.allow_host,
            "tcp": args.tcp,
            "allow_underscores": args.allow_underscores,
        }
        data = client.call("POST", "/api/routes", body)
        if args.json:
            dump_json(env, data)
            return 0
        r = data["route"]
        if args.tcp:
            return _said_tcp(env, r["name"], r["target"], data)
        env.out(f"{data['url']} -> {r['target']}" + (" (and *.)" if r["wildcard"] else ""))
        if data.get("token"):
            env.out(f"token: {data['token']}")
            env.out(f"open once: {data['url']}/?homeport_token={data['token']}")
        return 0
    if cmd == "rm":
        data = client.call("DELETE", f"/api/routes/{normalize_name(args.name)}")
        dump_json(env, data) if args.json else env.out(f"removed {data['removed']}")
        return 0
    raise UsageError(f"unknown route command {cmd!r}; use add, rm or ls")


def _said_tcp(env: Env, name: str, target: str, data: dict[str, object]) -> int:
    from homeport.errors import EnvironmentProblem

    if not data.get("listen"):
        raise EnvironmentProblem(
            f"the route {name} is saved but cannot listen: {data.get('listen_error')}",
            hint="homeport addr --list shows the address leases; homeport who PORT the holder",
        )
    env.out(f"{name} -> {target}: listening on {data['listen']}")
    env.out("resolve the name for every client with: homeport hosts sync")
    return 0


def _ls(env: Env, as_json: bool) -> int:
    """Routes from the running gateway, else straight from the state database."""
    from homeport.cli.render import dump_json
    from homeport.daemon.client import Client
    from homeport.daemon.config import DaemonConfig

    config = DaemonConfig.build()
    client = Client.for_config(config)
    if client.health() is not None:
        routes = client.call("GET", "/api/routes")["routes"]
    else:
        from homeport.store import Store

        store = Store(config.db_path)
        routes = [r.to_json() for r in store.routes()]
        store.close()
        if not as_json:
            env.err("homeport: the gateway is not running; these routes return with homeport up")
    if as_json:
        dump_json(env, {"routes": routes})
    else:
        _render(env, routes, client.port)
    return 0 if routes else 1


def _render(env: Env, routes: list[dict[str, object]], port: int) -> None:
    from homeport.cli.render import table

    if not routes:
        env.out("no routes yet: homeport route add NAME PORT, or homeport run -- CMD")
        return
    rows = [
        [
            _url(r, port),
            str(r["target"]),
            str(r["auth"]),
            "yes" if r["same_origin"] else "-",
            "tcp" if _tcp(r) else "run" if r["service_id"] else "route",
        ]
        for r in routes
    ]
    env.out(table(env, ["URL", "TARGET", "AUTH", "SAME-ORIGIN", "KIND"], rows))


def _tcp(r: dict[str, object]) -> bool:
    return str(r["target"]).startswith("tcp://")


def _url(r: dict[str, object], port: int) -> str:
    """How a client reaches the route: through the gateway's port, or for a TCP route
    on the target's own port at the name's address (``homeport hosts sync``)."""
    if _tcp(r):
        return f"tcp://{r['name']}:{str(r['target']).rpartition(':')[2]}"
    from homeport.addr import http_url

    return http_url(str(r["name"]), port) + (" (+ *.)" if r["wildcard"] else "")
