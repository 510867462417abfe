"""JSON Schemas of the MCP tools: what each takes and what it answers (data, no code).

The answers are the CLI's ``--json`` shapes (each command's ``--help`` documents its own), so
an agent and a script read the same records. Output schemas name the fields an agent relies on
and their types; records may carry more fields than listed (``additionalProperties``), as the
``--json`` shapes grow additively.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer"}
_NUM: Schema = {"type": "number"}
_BOOL: Schema = {"type": "boolean"}
_PORT: Schema = {"type": "integer", "minimum": 1, "maximum": 65535}


def _nullable(schema: Schema) -> Schema:
    # A type list, not anyOf: the client validates every answer, and anyOf costs it a
    # second validation pass per field (a 200-listener answer: most of the check's time).
    if set(schema) == {"type"} and isinstance(schema["type"], str):
        return {"type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(
    props: dict[str, Schema], required: tuple[str, ...] = (), *, closed: bool = False
) -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    return out


def _arr(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def _inputs(
    props: dict[str, Schema], required: tuple[str, ...] = (), *, one_of: tuple[str, ...] = ()
) -> Schema:
    """Input schemas are closed: an unknown argument is a mistake worth saying so.
    ``one_of``: names of which at least one must be given (the first is the documented one,
    the others are what agents tend to write: ``name`` or ``id`` for a service, ``port``
    for ``who``); ``ALIASES`` maps them back."""
    out = _obj(props, required, closed=True)
    if one_of:
        out["anyOf"] = [{"required": [n]} for n in one_of]
    return out


def _alias(of: str, schema: Schema) -> Schema:
    return {**schema, "description": f"the same as {of}"}


PROCESS = _obj(
    {
        "pid": _INT,
        "name": _STR,
        "cmdline": _arr(_STR),
        "uid": _nullable(_INT),
        "user": _nullable(_STR),
        "cwd": _nullable(_STR),
        "start_time": _nullable(_NUM),
        "ppid": _nullable(_INT),
        "parents": _arr(_obj({"pid": _INT, "name": _STR})),
    },
    ("pid", "name", "cmdline"),
)
#: A listing's rows: the SDK's client checks every answer against the output schema (an
#: agent host pays for it on each call: ~10 µs a keyword, thousands for 200 rows), so the
#: row names the fields an agent acts on; ``family``, ``state``, ``notes`` … are documented
#: in the tool's description and in ``homeport ls --help``.
LISTING_OWNER = _obj({"pid": _INT, "name": _STR, "user": _nullable(_STR)}, ("pid", "name"))
LISTING_ROW = _obj(
    {
        "proto": {"enum": ["tcp", "udp"]},
        "address": _STR,
        "port": _INT,
        "exposure": {"enum": ["loopback", "all-interfaces", "lan", "public"]},
        "owners": _arr(LISTING_OWNER),
        "route": _nullable(_STR),
    },
    ("proto", "address", "port", "exposure", "pids", "owners", "owner_status"),
)
#: The full row, for answers about one port (who, explain), where the check is cheap.
LISTENER = _obj(
    {
        "proto": {"enum": ["tcp", "udp"]},
        "family": {"enum": [4, 6]},
        "address": _STR,
        "port": _INT,
        "state": _STR,
        "exposure": {"enum": ["loopback", "all-interfaces", "lan", "public"]},
        "pids": _arr(_INT),
        "owners": _arr(PROCESS),
        "owner_status": {"enum": ["known", "permission-denied", "gone", "none"]},
        "owner_hint": _nullable(_STR),
        "route": _nullable(_STR),
        "notes": _arr(_STR),
    },
    ("proto", "address", "port", "exposure", "pids", "owners", "owner_status"),
)
SERVICE = _obj(
    {
        "id": _STR,
        "name": _STR,
        "cmd": _arr(_STR),
        "cwd": _STR,
        "port": _INT,
        "pid": _INT,
        "pgid": _INT,
        "state": {"enum": ["starting", "running", "exited", "stopped", "reaped", "lost"]},
        "started": _NUM,
        "exit_code": _nullable(_INT),
        "stopped": _nullable(_NUM),
    },
    ("id", "name", "cmd", "port", "pid", "state"),
)
ROUTE = _obj(
    {
        "name": _STR,
        "target": _STR,
        "wildcard": _BOOL,
        "auth": _STR,
        "same_origin": _BOOL,
        "allow_hosts": _arr(_STR),
        "service_id": _nullable(_STR),
    },
    ("name", "target", "auth"),
)
LEASE = _obj(
    {
        "port": _INT,
        "proto": {"enum": ["tcp", "udp"]},
        "name": _nullable(_STR),
        "holder": _obj({"pid": _INT, "start": _nullable(_STR)}),
        "created": _NUM,
        "expires": _nullable(_NUM),
        "bound": _BOOL,
    },
    ("port", "proto"),
)
ACCESS = _obj(
    {
        "id": _INT,
        "time": _NUM,
        "client_addr": _STR,
        "client_port": _INT,
        "host": _STR,
        "method": _STR,
        "path": _STR,
        "status": _INT,
        "bytes_in": _INT,
        "bytes_out": _INT,
        "duration_ms": _NUM,
        "route": _nullable(_STR),
        "reason": _nullable(_STR),
        "external": _BOOL,
    },
    ("id", "time", "host", "method", "path", "status"),
)
_SERVICE_REF: Schema = {
    "type": "string",
    "minLength": 1,
    "description": "the service's name (as run_service gave it) or its id",
}
_SERVICE_ARGS: dict[str, Schema] = {
    "service": _SERVICE_REF,
    "name": _alias("service", _SERVICE_REF),
    "id": _alias("service", _SERVICE_REF),
}
_SERVICE_ONE_OF = ("service", "name", "id")
_COMMAND: Schema = {
    "anyOf": [{**_STR, "minLength": 1}, {**_arr(_STR), "minItems": 1}],
    "description": "a command line (split like a shell, never run by one) or a list of arguments",
}
#: tool -> (documented argument, its aliases): the tools read the documented name only.
ALIASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "who": ("target", ("port",)),
    "explain": ("text", ("target",)),
    "run_service": ("command", ("cmd",)),
    "stop_service": ("service", ("name", "id")),
    "restart_service": ("service", ("name", "id")),
    "service_logs": ("service", ("name", "id")),
}

PROJECT = _obj(
    {
        "id": _STR,
        "name": _STR,
        "file": _STR,
        "root": _STR,
        "branch": _nullable(_STR),
        "profiles": _arr(_STR),
        "services": _arr(
            _obj(
                {
                    "name": _STR,
                    "kind": _STR,
                    "state": _STR,
                    "pid": _nullable(_INT),
                    "port": _nullable(_INT),
                    "url": _nullable(_STR),
                    "route": _nullable(_STR),
                    "restarts": _INT,
                    "exit_code": _nullable(_INT),
                    "message": _nullable(_STR),
                },
                ("name", "state"),
            )
        ),
    },
    ("id", "name", "services"),
)

#: tool name -> (description, input schema, output schema)
TOOLS: dict[str, tuple[str, Schema, Schema]] = {
    "listeners": (
        "Every listening TCP/UDP socket on this machine with its owning processes and its "
        "exposure (loopback / all-interfaces / lan / public), as `homeport ls --json`: rows "
        "{proto, family, address, port, state, exposure, v6only, uid, inode, pids, owners: "
        "[{pid, name, cmdline, uid, user, cwd, start_time, ppid, parents}], owner_status, "
        "owner_hint, route, notes}, and attention notes for what is exposed.",
        _inputs(
            {
                "port": _PORT,
                "pid": _INT,
                "user": _STR,
                "exposed": {**_BOOL, "description": "only what is reachable beyond loopback"},
                "tcp": {**_BOOL, "description": "TCP only"},
                "udp": {**_BOOL, "description": "UDP only"},
                "all": {**_BOOL, "description": "every socket state, not only listening"},
            }
        ),
        _obj(
            {
                "listeners": _arr(LISTING_ROW),
                "attention": _arr(_obj({"level": _STR, "message": _STR, "port": _nullable(_INT)})),
            },
            ("listeners", "attention"),
        ),
    ),
    "who": (
        "Who holds a port: every owner with its parent chain, cwd and start time, and the "
        "clients connected to it, as `homeport who --json`. An error when nothing holds it.",
        _inputs(
            {
                "target": {
                    "type": ["string", "integer"],
                    "description": "PORT, HOST:PORT or [IPv6]:PORT",
                },
                "port": _alias("target", _PORT),
                "tcp": _BOOL,
                "udp": _BOOL,
            },
            one_of=("target", "port"),
        ),
        _obj(
            {
                "target": _STR,
                "listeners": _arr(LISTENER),
                "clients": _arr(
                    _obj(
                        {
                            "proto": _STR,
                            "local_address": _STR,
                            "local_port": _INT,
                            "remote_address": _STR,
                            "remote_port": _INT,
                            "state": _STR,
                            "client_owners": _arr(PROCESS),
                        }
                    )
                ),
            },
            ("target", "listeners", "clients"),
        ),
    ),
    "explain": (
        "Explain an address (127.0.0.1:3000, [::1]:5432, a URL) or a pasted error message "
        "(ECONNREFUSED, EADDRINUSE …): what it means, what is live there now and what to do, "
        "as `homeport explain --json`.",
        _inputs(
            {
                "text": {**_STR, "minLength": 1, "description": "address, URL or error text"},
                "target": _alias("text", {**_STR, "minLength": 1}),
                "at": {**_STR, "description": "HOST:PORT when the error text does not name it"},
            },
            one_of=("text", "target"),
        ),
        _obj(
            {
                "input": _STR,
                "kind": {"enum": ["address", "error"]},
                "error": _nullable(_obj({"rule": _STR, "tool": _STR, "kind": _STR})),
                "target": {"type": "object"},
                "address": {"type": "object"},
                "port": {"type": "object"},
                "live": _obj({"listeners": _arr(LISTENER)}),
                "diagnosis": _arr(_obj({"id": _STR, "summary": _STR, "detail": _arr(_STR)})),
                "next_steps": _arr(_STR),
            },
            ("input", "kind", "diagnosis", "next_steps"),
        ),
    ),
    "doctor": (
        "Check this machine for local development (loopback, localhost resolution, ports, "
        "firewall on lo …), each check with a fix, as `homeport doctor --json`.",
        _inputs({"only": {**_arr(_STR), "description": "check ids to run (default all)"}}),
        _obj(
            {
                "status": {"enum": ["ok", "skip", "warn", "fail"]},
                "counts": _obj({s: _INT for s in ("ok", "skip", "warn", "fail")}),
                "checks": _arr(
                    _obj(
                        {
                            "id": _STR,
                            "title": _STR,
                            "status": {"enum": ["ok", "skip", "warn", "fail"]},
                            "summary": _STR,
                            "detail": _arr(_STR),
                            "fix": _nullable(_STR),
                        },
                        ("id", "status", "summary"),
                    )
                ),
            },
            ("status", "counts", "checks"),
        ),
    ),
    "free_port": (
        "Free TCP ports (free on every family and address, outside the ephemeral range), "
        "leased to this MCP session until it ends, as `homeport port --json`.",
        _inputs(
            {
                "name": {**_STR, "description": "stable name: the same port next time"},
                "count": {"type": "integer", "minimum": 1, "maximum": 64},
                "udp": _BOOL,
                "range": {**_STR, "description": "LO-HI", "pattern": r"^\d+-\d+$"},
            }
        ),
        _obj({"ports": _arr(LEASE)}, ("ports",)),
    ),
    "wait_for": (
        "Wait (bounded) until ports, URLs or unix sockets are really ready; sends progress "
        "notifications while waiting. Answers `homeport wait --json` (ready true or false).",
        _inputs(
            {
                "targets": {
                    **_arr({"type": ["string", "integer"]}),
                    "minItems": 1,
                    "description": "PORT, HOST:PORT, http(s)://… or unix:/path",
                },
                "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 300},
                "any": {**_BOOL, "description": "ready when any one target is"},
                "status": {**_STR, "description": "HTTP statuses that count, e.g. 200-399"},
                "contains": {**_STR, "description": "HTTP body must contain this"},
                "insecure": _BOOL,
            },
            ("targets",),
        ),
        _obj(
            {
                "ready": _BOOL,
                "mode": {"enum": ["all", "any"]},
                "elapsed": _NUM,
                "targets": _arr(
                    _obj(
                        {
                            "target": _STR,
                            "ready": _BOOL,
                            "attempts": _INT,
                            "elapsed": _nullable(_NUM),
                            "address": _nullable(_STR),
                            "status": _nullable(_INT),
                            "reason": _STR,
                        },
                        ("target", "ready", "reason"),
                    )
                ),
            },
            ("ready", "targets"),
        ),
    ),
    "routes": (
        "The gateway's NAME.localhost routes, as `homeport route ls --json` (secrets left out).",
        _inputs({}),
        _obj({"routes": _arr(ROUTE), "gateway_running": _BOOL}, ("routes",)),
    ),
    "run_service": (
        "Start a dev server through the homeport daemon on a free port (PORT set, port flags "
        "added for known servers) and route NAME.localhost to it, as `homeport run`. Only "
        "commands the server's --allow-run allowlist admits. Ends with this session unless "
        "the server runs with --keep.",
        _inputs(
            {
                "command": _COMMAND,
                "cmd": _alias("command", _COMMAND),
                "name": {**_STR, "description": "route name (default: the cwd's folder name)"},
                "cwd": {**_STR, "description": "absolute folder to run in (default: the server's)"},
                "port": _PORT,
            },
            one_of=("command", "cmd"),
        ),
        _obj({"service": SERVICE, "url": _nullable(_STR)}, ("service",)),
    ),
    "stop_service": (
        "Stop a service homeport started (SIGTERM to its process group, then SIGKILL).",
        _inputs(_SERVICE_ARGS, one_of=_SERVICE_ONE_OF),
        _obj({"service": SERVICE}, ("service",)),
    ),
    "restart_service": (
        "Restart a service homeport started: the same command, folder, port and name.",
        _inputs(_SERVICE_ARGS, one_of=_SERVICE_ONE_OF),
        _obj({"service": SERVICE, "url": _nullable(_STR)}, ("service",)),
    ),
    "service_logs": (
        "The last output lines of a service homeport started. `since` is the `next` cursor "
        "of an earlier answer: only lines after it.",
        _inputs(
            {
                **_SERVICE_ARGS,
                "tail": {"type": "integer", "minimum": 1, "maximum": 1000},
                "since": {"type": "integer", "minimum": 0},
            },
            one_of=_SERVICE_ONE_OF,
        ),
        _obj(
            {"service": SERVICE, "lines": _arr(_STR), "next": _INT, "dropped": _INT},
            ("service", "lines", "next"),
        ),
    ),
    "access_log": (
        "Requests through the gateway, newest last, as `homeport logs --access --json`.",
        _inputs(
            {
                "route": _STR,
                "limit": {"type": "integer", "minimum": 1, "maximum": 10000},
                "after": {"type": "integer", "minimum": 0, "description": "only ids after it"},
                "status": {"type": "integer", "minimum": 100, "maximum": 599},
                "method": _STR,
                "external": {**_BOOL, "description": "only clients not on loopback"},
                "control": {**_BOOL, "description": "include the gateway's own API"},
            }
        ),
        _obj({"records": _arr(ACCESS), "last_id": _nullable(_INT)}, ("records",)),
    ),
    "kill_port": (
        "Stop what holds a port: SIGTERM, wait for the release, then SIGKILL. Only processes "
        "of services this session or homeport started, unless the server runs with "
        "--allow-kill any.",
        _inputs(
            {
                "port": _PORT,
                "timeout": {"type": "number", "minimum": 0, "maximum": 60},
            },
            ("port",),
        ),
        _obj(
            {
                "target": _STR,
                "dry_run": _BOOL,
                "released": _BOOL,
                "processes": _arr(
                    _obj(
                        {
                            "pid": _INT,
                            "name": _STR,
                            "result": _STR,
                            "signals": _arr(_STR),
                            "detail": _STR,
                        }
                    )
                ),
                "refused": _arr(_obj({"pid": _INT, "reason": _STR})),
            },
            ("target", "released", "processes"),
        ),
    ),
    "project_up": (
        "Bring a homeport.toml project up through the daemon's supervisor (services in "
        "dependency order, ports, routes, readiness), as `homeport up` in a project folder; "
        "waits until its services settle (ready, completed or failed), with progress. Every "
        "service's command must match the server's --allow-run allowlist. Goes down with "
        "this session unless the server runs with --keep.",
        _inputs(
            {
                "path": {**_STR, "description": "project folder or file (default: the cwd)"},
                "profiles": _arr(_STR),
                "services": {**_arr(_STR), "description": "only these (and what they need)"},
                "wait": {**_BOOL, "description": "wait for the services to settle (default)"},
                "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
            }
        ),
        _obj({"project": PROJECT, "selected": _arr(_STR)}, ("project",)),
    ),
    "project_status": (
        "The projects the daemon runs and each service's state, pid, port and URL, as "
        "`homeport ps --json`.",
        _inputs({"project": {**_STR, "description": "one project's id (default: all)"}}),
        _obj({"projects": _arr(PROJECT)}, ("projects",)),
    ),
    "audit": (
        "Audit what listens: exposure, what answers without auth, what a web page could "
        "reach; sends progress notifications per listener. As `homeport audit --json`.",
        _inputs(
            {
                "port": _PORT,
                "timeout": {"type": "number", "minimum": 0.05, "maximum": 30},
                "web": {**_BOOL, "description": "the browser-risk checks (default true)"},
            }
        ),
        _obj(
            {
                "version": _INT,
                "summary": _obj(
                    {"listeners": _INT, "findings": _INT, "by_severity": {"type": "object"}}
                ),
                "listeners": _arr({"type": "object"}),
                "findings": _arr(
                    _obj({"rule": _STR, "severity": _STR, "title": _STR, "port": _INT})
                ),
            },
            ("summary", "listeners", "findings"),
        ),
    ),
}
