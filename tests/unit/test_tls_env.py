"""The children's CA variables: the merged bundle, when they apply, and who wins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from homeport.services.flags import Plan
from homeport.services.runner import with_ca_env
from homeport.tls.env import child_env, merged, system_bundle


def test_merged_keeps_block_boundaries() -> None:
    assert merged(b"A", b"B\n") == b"A\nB\n"
    assert merged(b"A\n", b"B\n") == b"A\nB\n"
    assert merged(b"", b"B\n") == b"B\n"


def test_system_bundle_override_wins(tmp_path: Path) -> None:
    assert system_bundle({"HOMEPORT_SYSTEM_CA_BUNDLE": str(tmp_path / "b.pem")}) == (
        tmp_path / "b.pem"
    )


def test_no_bundle_no_variables(tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "ca.pem").write_text("x")
    assert child_env(tmp_path) == {}


def test_run_plan_gets_the_variables_but_the_users_own_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "ca.pem").write_text("root\n")
    (tls / "bundle.pem").write_text("system\nroot\n")
    system = tmp_path / "system.pem"
    system.write_text("system\n")
    mine = tmp_path / "mine.pem"
    mine.write_text("mine\n")
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_BUNDLE", str(system))
    for name in ("NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(mine))  # the user's own file: kept
    monkeypatch.setenv("CURL_CA_BUNDLE", str(system))  # the system bundle: ours is a superset
    # the bundle is older than nothing here: it is not rewritten
    for p in (system, mine, tls / "ca.pem"):
        os.utime(p, (0, 0))
    plan = with_ca_env(Plan(("srv",), {"PORT": "1"}, None), tmp_path)
    assert plan.env == {
        "NODE_EXTRA_CA_CERTS": str(tls / "ca.pem"),
        "REQUESTS_CA_BUNDLE": str(tls / "bundle.pem"),
        "CURL_CA_BUNDLE": str(tls / "bundle.pem"),
        "PORT": "1",
    }


def test_sudo_warning_only_for_another_user_under_sudo() -> None:
    from homeport.cli.trust import sudo_warning

    assert sudo_warning({"SUDO_USER": "me"}, 1000) is None
    assert sudo_warning({}, 0) is None
    assert sudo_warning({"SUDO_USER": "root"}, 0) is None
    warning = sudo_warning({"SUDO_USER": "me"}, 0)
    assert warning is not None
    assert "root's, not me's" in warning
