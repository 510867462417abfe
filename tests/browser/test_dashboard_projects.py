"""The dashboard shows a project's stack, grouped, and restarts a service by its button."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
Shot = Callable[[Any, str], Path]


def _settled(daemon: Any, project: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        data: dict[str, Any] = daemon.api("GET", f"/api/projects/{project}").json()["project"]
        if all(s["state"] in ("ready", "completed") for s in data["services"]):
            return data
        assert time.monotonic() < deadline, data
        # A long poll on the project's changes: it answers as soon as a state moves.
        daemon.api("GET", f"/api/projects/{project}/wait?version={data['version']}&timeout=5")


def test_project_grouped_with_a_restart_button(
    page: Any, daemon: Any, tmp_path: Path, shot: Shot
) -> None:
    root = tmp_path / "shop"
    root.mkdir()
    (root / "homeport.toml").write_text(
        '[project]\nname = "shop"\n'
        f'[services.web]\nargs = ["{sys.executable}", "-m", "http.server", "${{web.port}}",'
        ' "--bind", "127.0.0.1"]\n'
        '[services.worker]\ncmd = "echo working; exec sleep 600"\nport = false\n'
        'depends_on = ["web"]\n'
    )
    body = {"file": str(root / "homeport.toml"), "env": dict(os.environ)}
    assert daemon.api("POST", "/api/projects", json=body).status_code == 201
    before = {s["name"]: s for s in _settled(daemon, "shop")["services"]}

    page.click("#tab-routes")
    group = page.locator('#p-list section[data-project="shop"]')
    expect(group).to_contain_text("shop")
    web = group.locator('tr[data-service="web"]')
    expect(web).to_contain_text("ready")
    expect(web).to_contain_text(str(before["web"]["pid"]))
    expect(web.locator("a")).to_have_attribute("href", f"http://web.shop.localhost:{daemon.port}")
    expect(group.locator('tr[data-service="worker"]')).to_contain_text("ready")
    shot(page, "projects")

    web.locator("button[data-pact=restart]").click()
    expect(web.locator("td").nth(4)).to_have_text("1")  # restarts, pushed by the stream
    after = {s["name"]: s for s in _settled(daemon, "shop")["services"]}
    assert after["web"]["pid"] != before["web"]["pid"]
    assert after["web"]["restarts"] == 1
    expect(web.locator("td").nth(2)).to_have_text(str(after["web"]["pid"]))
    expect(web).to_contain_text("ready")
    # Stop from the page: the button turns into Start.
    web.locator("button[data-pact=stop]").click()
    expect(web).to_contain_text("stopped")
    expect(web.locator("button[data-pact=start]")).to_be_visible()
    daemon.api("POST", "/api/projects/shop/down")
