"""Serve homeport's tools to an AI agent over the Model Context Protocol (stdio).

An agent host (Claude Code, Cursor, VS Code, Zed …) starts this command and talks MCP on its
stdin/stdout. Tools: listeners, who, explain, doctor, free_port, wait_for, routes,
run_service, stop_service, restart_service, service_logs, access_log, kill_port, audit,
project_up, project_status.
Resources: homeport://routes, homeport://services/{id}/output, homeport://audit/last.

Safe by default, because an agent is a user you do not fully trust:
  * run_service starts only commands that match an --allow-run pattern (fnmatch over the
    shell-quoted command line); with none given it starts nothing. --allow-run any: anything.
    project_up checks every service's cmd in homeport.toml against the same patterns.
  * kill_port and stop_service act only on services homeport started (this session, homeport
    run, the dashboard); --allow-kill any also lets kill_port stop other processes of this
    user, never PID 1, the gateway or this server.
  * no answer carries a route's token or password, the daemon's token, a homeport_token link,
    a user:password@ URL or a process environment.
  * every tool call is written to homeport's event log with the client's name
    (homeport events, and the dashboard's events).
  * when the client disconnects, the services and port leases this session started end,
    unless --keep.

configure an agent host (one line each; see README.md):
  Claude Code        claude mcp add homeport -- homeport mcp --allow-run 'npm run *'
  .cursor/mcp.json   {"mcpServers": {"homeport": {"command": "homeport", "args": ["mcp"]}}}
  .vscode/mcp.json   {"servers": {"homeport": {"type": "stdio", "command": "homeport",
                      "args": ["mcp"]}}}
  Zed settings.json  {"context_servers": {"homeport": {"command": "homeport", "args": ["mcp"]}}}

--http serves the same tools over Streamable HTTP at http://homeport.localhost:PORT/mcp
(default port 62894) for agent hosts that speak HTTP: loopback only, Host and Origin
checked against homeport's own names, and a bearer token, the daemon's token file. Its
session is the process: what it started ends when it stops (Ctrl-C), unless --keep.

examples:
  homeport mcp                                   every tool; run_service starts nothing
  homeport mcp --allow-run 'npm run *' --allow-run 'python -m http.server*'
  homeport mcp --allow-run any --allow-kill any --keep
"""

from __future__ import annotations

import argparse

from homeport.cli.env import Env

HELP = "serve homeport's tools to AI agents over MCP (stdio), safe by default"
#: ``--http``'s default port: the one after the gateway's 62893.
HTTP_PORT = 62894


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-run",
        action="append",
        default=[],
        metavar="PATTERN",
        help="commands run_service may start: fnmatch over the command line (repeatable); "
        "'any' allows every command",
    )
    parser.add_argument(
        "--allow-kill",
        choices=("session", "any"),
        default="session",
        help="session (default): kill_port stops only services homeport started; any: also "
        "other processes of this user (never PID 1 or the gateway)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave this session's services and leases running after the client disconnects",
    )
    parser.add_argument(
        "--http",
        action="store_true",
        help="serve Streamable HTTP at http://homeport.localhost:PORT/mcp instead of stdio "
        "(loopback only; Host/Origin checks; Authorization: Bearer <the daemon's token file>)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=HTTP_PORT,
        help=f"the port for --http (default {HTTP_PORT}, beside the gateway's)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")


def run(args: argparse.Namespace, env: Env) -> int:
    import logging

    from homeport.errors import UsageError
    from homeport.mcp.policy import McpConfig

    patterns = tuple(p.strip() for p in args.allow_run)
    if any(not p for p in patterns):
        raise UsageError("--allow-run needs a pattern, e.g. --allow-run 'npm run *'")
    if args.json:
        raise UsageError("homeport mcp speaks JSON-RPC on stdout already; drop --json")
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is out of range; use 1-65535")
    if not args.http and env.stdin_isatty:
        env.err("homeport mcp: waiting for an MCP client on stdin (an agent host starts this)")
    # stdout carries the protocol: every log line goes to stderr.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="homeport mcp: %(levelname)s %(name)s: %(message)s",
    )
    config = McpConfig(allow_run=patterns, allow_kill=args.allow_kill, keep=args.keep)
    if args.http:
        from homeport.daemon.config import DaemonConfig
        from homeport.mcp.server import serve_http

        env.err(
            f"homeport mcp: serving http://homeport.localhost:{args.port}/mcp (loopback only); "
            f"clients send Authorization: Bearer $(cat {DaemonConfig.build().token_path})"
        )
        serve_http(config, args.port)
        return 0
    from homeport.mcp.server import serve

    serve(config)
    return 0
