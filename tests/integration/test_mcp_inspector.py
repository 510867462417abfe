"""The MCP Inspector (npm ``@modelcontextprotocol/inspector``) in CLI mode, an outside client
written against the TypeScript SDK, lists homeport's tools and calls one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from mcp_support import HOMEPORT

ROOT = Path(__file__).resolve().parents[2]


def _inspector() -> str | None:
    """.ci/run installs it under .ci/node; HOMEPORT_MCP_INSPECTOR or PATH work too."""
    candidates = [
        os.environ.get("HOMEPORT_MCP_INSPECTOR"),
        str(ROOT / ".ci" / "node" / "node_modules" / ".bin" / "mcp-inspector"),
        shutil.which("mcp-inspector"),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


INSPECTOR = _inspector()
pytestmark = pytest.mark.skipif(
    INSPECTOR is None or shutil.which("node") is None,
    reason="the MCP Inspector is not installed (.ci/run installs it with npm)",
)


def _inspect(tmp_path: Path, *argv: str) -> dict[str, object]:
    assert INSPECTOR is not None
    env = {
        "HOME": str(tmp_path),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    }
    out = subprocess.run(
        [INSPECTOR, "--cli", HOMEPORT, "mcp", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    data: dict[str, object] = json.loads(out.stdout)
    return data


def test_inspector_lists_the_tools(tmp_path: Path) -> None:
    listed = _inspect(tmp_path, "--method", "tools/list")
    tools = {t["name"]: t for t in listed["tools"]}  # type: ignore[attr-defined]
    assert {"listeners", "who", "kill_port", "run_service", "audit"} <= set(tools)
    assert tools["kill_port"]["inputSchema"]["required"] == ["port"]
    assert "outputSchema" in tools["listeners"]


def test_inspector_calls_a_tool(tmp_path: Path) -> None:
    called = _inspect(
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "doctor",
        "--tool-arg",
        'only=["loopback.ipv4"]',
    )
    assert called.get("isError") in (None, False), called
    checks = called["structuredContent"]["checks"]  # type: ignore[index]
    assert [c["id"] for c in checks] == ["loopback.ipv4"]
