"""``homeport mcp``: the localhost toolkit as a Model Context Protocol server (official SDK,
low-level ``Server``: the schemas are homeport's own, in ``schemas.py``).

Every call: the arguments are checked against the tool's input schema; the tool runs in a
worker thread (the inventory, probes and daemon calls block); its answer is scrubbed of
secrets and returned as structured content (and as JSON text for clients that read only
text); the call is written to homeport's event log with the client's name. A bad argument, a
refusal or a failure is a tool error with a one-line message, never a traceback, and the
server keeps serving.

Resources: ``homeport://routes`` (the route table), ``homeport://services/{id}/output`` (a
service's recent output), ``homeport://audit/last`` (this session's last audit report).
"""

from __future__ import annotations

import functools
import json
import logging
import signal
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import mcp_types as types
from anyio import from_thread
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from homeport import __version__
from homeport.errors import HomeportError, NotFound
from homeport.mcp import projects, services, tools
from homeport.mcp.policy import McpConfig, scrub, scrub_json
from homeport.mcp.schemas import ALIASES, TOOLS
from homeport.mcp.session import Refused, Session

if TYPE_CHECKING:
    from mcp.server import ServerRequestContext

log = logging.getLogger("homeport.mcp")

IMPLEMENTATIONS: dict[str, tools.Tool] = {
    "listeners": tools.listeners,
    "who": tools.who,
    "explain": tools.explain,
    "doctor": tools.doctor,
    "free_port": tools.free_port,
    "wait_for": tools.wait_for,
    "routes": tools.routes,
    "run_service": services.run_service,
    "stop_service": services.stop_service,
    "restart_service": services.restart_service,
    "service_logs": services.service_logs,
    "access_log": tools.access_log,
    "kill_port": services.kill_port,
    "project_up": projects.project_up,
    "project_status": projects.project_status,
    "audit": tools.audit,
}
INSTRUCTIONS = (
    "homeport answers what listens on this machine (listeners, who), explains addresses and "
    "connection errors (explain), checks local networking (doctor), hands out free ports "
    "(free_port), waits for readiness (wait_for), runs dev servers as NAME.localhost "
    "(run_service, service_logs, stop_service) and audits exposure (audit). Services this "
    "session starts stop when it ends."
)
ROUTES_URI = "homeport://routes"
AUDIT_URI = "homeport://audit/last"
OUTPUT_TEMPLATE = "homeport://services/{service}/output"
#: JSON-RPC error for an unknown resource (MCP specification, server/resources, "Error Handling").
RESOURCE_NOT_FOUND = -32002


def _tool_list() -> list[types.Tool]:
    return [
        types.Tool(name=name, description=desc, input_schema=inp, output_schema=out)
        for name, (desc, inp, out) in TOOLS.items()
    ]


@functools.cache
def _validator(name: str) -> Any:
    # jsonschema is imported on the first call, not at start: ~0.1 s before `initialize`.
    from jsonschema import Draft202012Validator

    return Draft202012Validator(TOOLS[name][1])


def check_arguments(name: str, arguments: dict[str, Any]) -> str | None:
    """A one-line complaint about ``arguments``, or None when the input schema admits them."""
    errors = sorted(_validator(name).iter_errors(arguments), key=lambda e: list(e.path))
    if not errors:
        return None
    e = errors[0]
    where = ".".join(str(p) for p in e.path) or "arguments"
    if e.validator == "anyOf" and not e.path:  # one of several names is needed
        names = [alt["required"][0] for alt in e.validator_value]
        return f"bad arguments for {name}: give {' or '.join(repr(n) for n in names)}"
    return f"bad arguments for {name}: {where}: {e.message}"


def canonical(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` with an alias (``ALIASES``) renamed to the documented argument."""
    if name not in ALIASES:
        return arguments
    key, aliases = ALIASES[name]
    out = dict(arguments)
    for alias in aliases:
        if alias in out:
            value = out.pop(alias)
            out.setdefault(key, value)
    return out


def error_result(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )


class McpServer:
    """One session's server: the SDK's ``Server`` with homeport's handlers."""

    def __init__(self, config: McpConfig) -> None:
        self.session = Session(config)
        self.server: Server[Any] = Server(
            "homeport",
            version=__version__,
            title="homeport: everything on 127.0.0.1:PORT",
            instructions=INSTRUCTIONS,
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            on_list_resources=self.list_resources,
            on_list_resource_templates=self.list_resource_templates,
            on_read_resource=self.read_resource,
        )
        self._tools = _tool_list()

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=self._tools)

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        self._identify(ctx)
        name, arguments = params.name, dict(params.arguments or {})
        result, outcome = await self._run(ctx, name, arguments)
        self.session.record(name, arguments, outcome)
        return result

    async def _run(
        self, ctx: ServerRequestContext[Any], name: str, arguments: dict[str, Any]
    ) -> tuple[types.CallToolResult, str]:
        impl = IMPLEMENTATIONS.get(name)
        if impl is None:
            known = ", ".join(IMPLEMENTATIONS)
            return error_result(f"no tool named {name!r} (tools: {known})"), "unknown tool"
        complaint = check_arguments(name, arguments)
        if complaint is not None:
            return error_result(complaint), "refused: bad arguments"
        progress = _progress_bridge(ctx)
        args = canonical(name, arguments)
        try:
            data = await anyio.to_thread.run_sync(impl, self.session, args, progress)
        except HomeportError as exc:
            text = exc.message + (f" (hint: {exc.hint})" if exc.hint else "")
            text = scrub(text, self.session.secrets())
            refused = isinstance(exc, Refused)
            return error_result(text), ("refused: " if refused else "failed: ") + text
        except Exception as exc:  # a bug in one tool must not end the session
            log.exception("tool %s failed", name)
            text = f"internal error in homeport's {name} tool: {type(exc).__name__}: {exc}"
            return error_result(scrub(text, self.session.secrets())), "failed: internal error"
        clean, text = scrub_json(data, self.session.secrets())
        result = types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], structured_content=clean
        )
        return result, "ok"

    def _identify(self, ctx: ServerRequestContext[Any]) -> None:
        client = ctx.session.client_params
        if client is not None and client.client_info.name:
            info = client.client_info
            self.session.client_name = f"{info.name} {info.version}".strip()

    # -- resources ----------------------------------------------------------------------------

    async def list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        found = [
            types.Resource(
                uri=ROUTES_URI,
                name="routes",
                description="the gateway's NAME.localhost routes (JSON)",
                mime_type="application/json",
            ),
            types.Resource(
                uri=AUDIT_URI,
                name="last audit",
                description="this session's last audit report (JSON)",
                mime_type="application/json",
            ),
        ]
        for svc in await anyio.to_thread.run_sync(self._live_services):
            found.append(
                types.Resource(
                    uri=OUTPUT_TEMPLATE.format(service=svc["id"]),
                    name=f"{svc['name']} output",
                    description=f"recent output of {' '.join(svc['cmd'])} (pid {svc['pid']})",
                    mime_type="text/plain",
                )
            )
        return types.ListResourcesResult(resources=found)

    def _live_services(self) -> list[dict[str, Any]]:
        client = self.session.daemon_if_running()
        if client is None:
            return []
        return list(client.call("GET", "/api/services")["services"])

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(
            resource_templates=[
                types.ResourceTemplate(
                    uri_template=OUTPUT_TEMPLATE,
                    name="service output",
                    description="recent output of a service homeport started (name or id)",
                    mime_type="text/plain",
                )
            ]
        )

    async def read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        self._identify(ctx)
        try:
            text, mime = await anyio.to_thread.run_sync(self._resource, uri)
        except HomeportError as exc:
            # A JSON-RPC error with homeport's message, not the SDK's "Internal server error".
            message = scrub(exc.message, self.session.secrets())
            self.session.record("resources/read", {"uri": uri}, f"failed: {message}")
            code = RESOURCE_NOT_FOUND if isinstance(exc, NotFound) else types.INVALID_PARAMS
            raise MCPError(code, message) from None
        self.session.record("resources/read", {"uri": uri}, "ok")
        contents = types.TextResourceContents(
            uri=uri, mime_type=mime, text=scrub(text, self.session.secrets())
        )
        return types.ReadResourceResult(contents=[contents])

    def _resource(self, uri: str) -> tuple[str, str]:
        s = self.session
        if uri == ROUTES_URI:
            return json.dumps(tools.routes(s, {}, _no_progress)), "application/json"
        if uri == AUDIT_URI:
            if s.last_audit is None:
                empty = {"report": None, "note": "no audit yet in this session: call `audit`"}
                return json.dumps(empty), "application/json"
            return json.dumps(s.last_audit), "application/json"
        prefix, suffix = "homeport://services/", "/output"
        if uri.startswith(prefix) and uri.endswith(suffix):
            ref = uri[len(prefix) : -len(suffix)]
            logs = services.service_logs(s, {"service": ref}, _no_progress)
            return "\n".join(logs["lines"]), "text/plain"
        raise NotFound(f"no resource {uri} (see resources/list)")

    # -- running ------------------------------------------------------------------------------

    async def serve_stdio(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._stop_on_signal, tg.cancel_scope)
                async with stdio_server() as (read, write):
                    await self.server.run(read, write, self.server.create_initialization_options())
                tg.cancel_scope.cancel()
        finally:
            # The client closed the pipe, or sent SIGTERM (the SDK's client does, 2 s after
            # closing stdin): end what this session began either way.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.session.close)

    async def _stop_on_signal(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGHUP, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("stopping on %s", signal.Signals(signum).name)
                scope.cancel()
                return


def _no_progress(done: float, total: float | None, message: str | None) -> None:
    return None


def _progress_bridge(ctx: ServerRequestContext[Any]) -> tools.Progress:
    """A progress callback for a worker thread: each call sends ``notifications/progress`` on
    this request (a no-op when the client asked for none)."""

    def send(done: float, total: float | None, message: str | None) -> None:
        try:
            from_thread.run(ctx.session.report_progress, done, total, message)
        except Exception as exc:  # a client gone mid-call: the answer will not arrive either
            log.debug("progress not sent: %s", exc)

    return send


def serve(config: McpConfig) -> None:
    """Serve one client on stdin/stdout until it disconnects."""
    anyio.run(McpServer(config).serve_stdio)


def serve_http(config: McpConfig, port: int) -> None:
    """Serve Streamable HTTP on loopback ``port`` until interrupted (see ``mcp.http``)."""
    from homeport.mcp import http

    mcp = McpServer(config)
    anyio.run(http.serve_http, mcp.server, mcp.session.close, port)
