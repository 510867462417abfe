"""explain reads homeport's hosts block and address leases for a NAME.localhost or 127.0.x.y."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n")
    monkeypatch.setenv("HOMEPORT_HOSTS_FILE", str(path))
    return path


def test_explain_says_where_the_name_points_and_when_the_block_lacks_it(
    cli: Any, state_dir: Path, hosts: Path
) -> None:
    leased = json.loads(cli("addr", "db.shop", "--port", "5432", "--json").stdout)["address"]
    before = cli("explain", "db.shop.localhost:5432")
    assert f"{leased} is leased to db.shop.localhost" in before.stdout
    assert "not in" in before.stdout
    assert "sudo homeport hosts sync" in before.stdout
    assert cli("hosts", "sync").status == 0
    after = cli("explain", f"{leased}:5432")
    assert f"maps db.shop.localhost to {leased}" in after.stdout
    assert "not in" not in after.stdout
