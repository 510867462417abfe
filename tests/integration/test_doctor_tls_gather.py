"""The doctor's HTTPS facts gathered from a real CA on disk, in a temporary HOME and
system store (the stores are checked with openssl and vfychain, as `trust --status` does)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from homeport.doctor.checks import evaluate
from homeport.doctor.gather import gather_tls
from homeport.doctor.records import DoctorFacts, TlsFacts
from homeport.tls.authority import Authority
from homeport.tls.names import leaf_for


def tls_status(facts: TlsFacts, cid: str) -> str:
    checks = evaluate(DoctorFacts(tls=facts)).checks
    return next(c.status for c in checks if c.id == cid)


def test_gather_without_a_ca_makes_nothing(tmp_path: Path) -> None:
    facts = gather_tls(tmp_path)
    assert facts == TlsFacts(ca_cert=str(tmp_path / "tls" / "ca.pem"))
    assert list(tmp_path.iterdir()) == []


def test_gather_reads_the_ca_and_its_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # the NSS databases looked at are this HOME's
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_DIR", str(tmp_path / "sys"))
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_BUNDLE", str(tmp_path / "sys" / "bundle.pem"))
    state = tmp_path / "state"
    Authority(state).leaf(leaf_for("api.localhost"))
    (state / "tls" / "ca-key.pem").chmod(0o640)
    facts = gather_tls(state)
    assert facts.exists
    assert facts.key_mode == 0o640
    assert [k for k, _ in facts.leaves] == ["api.localhost"]  # the check leaf is not kept
    left = dt.datetime.fromisoformat(facts.ca_not_after) - dt.datetime.fromisoformat(facts.now)
    assert left > dt.timedelta(days=3600)
    assert {s.id: s.trusted for s in facts.stores}["system"] is False
    assert tls_status(facts, "tls.ca") == "fail"  # the key was readable by its group
    assert not (home / ".pki").exists()  # status looks, it does not create
