"""``homeport trust`` in a throwaway HOME and a throwaway system store: install, status and
uninstall, each store checked by verifying a leaf (openssl verify, vfychain), and every
store left exactly as it was after uninstall. Nothing here touches the real system store
or ~/.pki: HOME, the anchor dir, the update command and the bundle all point into tmp_path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from homeport.tls import ca, child_env
from homeport.tls.places import Places
from homeport.tls.stores import run

pytestmark = [
    pytest.mark.skipif(shutil.which("certutil") is None, reason="certutil (libnss3-tools) absent"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]

Cli = Callable[..., Any]

UPDATE = """#!/bin/sh
# update-ca-certificates, in miniature: the bundle is the base roots plus every anchor.
cat "{sys}/base.pem" "{sys}"/anchors/*.crt > "{sys}/bundle.pem" 2>/dev/null
exit 0
"""


@dataclass
class Machine:
    home: Path
    sys: Path
    state: Path

    @property
    def firefox(self) -> Path:
        return self.home / ".mozilla" / "firefox" / "x1y2.default-release"

    @property
    def chromium(self) -> Path:
        return self.home / ".pki" / "nssdb"


def certutil(*args: str) -> str:
    p = subprocess.run(["certutil", *args], capture_output=True, text=True, timeout=60, check=False)
    return p.stdout


@pytest.fixture
def machine(tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Machine:
    home, sysd = tmp_path / "home", tmp_path / "sys"
    (sysd / "anchors").mkdir(parents=True)
    home.mkdir()
    # The base roots: some other CA, so the merged bundles are seen to keep what was there.
    (sysd / "base.pem").write_bytes(ca.make_root(ca.dt.datetime.now(ca.dt.UTC)).cert_pem())
    shutil.copy(sysd / "base.pem", sysd / "bundle.pem")
    (sysd / "update").write_text(UPDATE.format(sys=sysd))
    (sysd / "update").chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_DIR", str(sysd / "anchors"))
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_UPDATE", str(sysd / "update"))
    monkeypatch.setenv("HOMEPORT_SYSTEM_CA_BUNDLE", str(sysd / "bundle.pem"))
    m = Machine(home, sysd, state_dir)
    # A Firefox profile that already holds another CA of the user's: it must stay.
    m.firefox.mkdir(parents=True)
    certutil("-N", "--empty-password", "-d", f"sql:{m.firefox}")
    other = tmp_path / "other.pem"
    other.write_bytes(ca.make_root(ca.dt.datetime.now(ca.dt.UTC)).cert_pem())
    certutil("-A", "-d", f"sql:{m.firefox}", "-n", "user's own CA", "-t", "C,,", "-i", str(other))
    return m


def snapshot(m: Machine) -> dict[str, object]:
    """Every store as bytes or as certutil lists it (NSS rewrites its SQLite pages on any
    change, so its files are compared by their listed contents)."""
    system = {str(p.relative_to(m.sys)): p.read_bytes() for p in m.sys.rglob("*") if p.is_file()}
    home = sorted(str(p.relative_to(m.home)) for p in m.home.rglob("*"))
    nss = {str(d): certutil("-L", "-d", f"sql:{d}") for d in (m.firefox, m.chromium) if d.is_dir()}
    return {"system": system, "home": home, "nss": nss}


def trusted(report_json: dict[str, object]) -> dict[str, object]:
    return {s["id"]: s["trusted"] for s in report_json["stores"]}  # type: ignore[attr-defined]


def test_install_status_uninstall_leaves_every_store_as_it_was(machine: Machine, cli: Cli) -> None:
    before = snapshot(machine)
    got = cli("trust", "--status", "--json")
    assert got.status == 1
    status = json.loads(got.stdout)
    assert status["ca_exists"] is False
    assert set(trusted(status).values()) == {False}
    assert not (machine.state / "tls").exists(), "status must not make a CA"

    got = cli("trust", "--json")
    assert got.status == 0, got.stdout + got.stderr
    installed = json.loads(got.stdout)
    assert trusted(installed) == {
        "system": True,
        "nss:chromium": True,
        "nss:firefox:x1y2.default-release": True,
        "env": True,
    }
    assert installed["commands"] == []

    status = json.loads(cli("trust", "--status", "--json").stdout)
    ca_cert = Path(status["ca_cert"])
    assert ca_cert.is_absolute()
    assert ca_cert == machine.state / "tls" / "ca.pem"
    assert ca_cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert status["complete"] is True
    assert set(trusted(status).values()) == {True}
    assert (machine.sys / "anchors" / "homeport.crt").read_bytes() == ca_cert.read_bytes()
    assert "user's own CA" in certutil("-L", "-d", f"sql:{machine.firefox}")

    again = json.loads(cli("trust", "--json").stdout)  # idempotent: nothing changes
    assert [s["changed"] for s in again["stores"]] == ["", "", "", ""]

    got = cli("trust", "--uninstall", "--json")
    assert got.status == 0, got.stdout
    assert set(trusted(json.loads(got.stdout)).values()) == {False}
    assert snapshot(machine) == before
    assert child_env(machine.state) == {}


def test_status_verifies_instead_of_looking_for_files(machine: Machine, cli: Cli) -> None:
    assert cli("trust").status == 0
    # The anchor file stays but the bundle loses it (an update that never ran) ...
    shutil.copy(machine.sys / "base.pem", machine.sys / "bundle.pem")
    # ... and the Chromium database keeps the certificate with its trust flags cleared.
    nick = json.loads(cli("trust", "--status", "--json").stdout)
    names = certutil("-L", "-d", f"sql:{machine.chromium}")
    ours = next(
        line.rsplit(None, 1)[0].strip() for line in names.splitlines() if "homeport" in line
    )
    certutil("-M", "-d", f"sql:{machine.chromium}", "-n", ours, "-t", ",,")
    got = cli("trust", "--status", "--json")
    assert got.status == 1
    state = trusted(json.loads(got.stdout))
    assert state["system"] is False
    assert state["nss:chromium"] is False
    assert state["nss:firefox:x1y2.default-release"] is True
    assert nick["complete"] is False
    assert (machine.sys / "anchors" / "homeport.crt").exists()


def test_without_root_the_user_stores_are_done_and_one_command_is_given(
    machine: Machine,
) -> None:
    def places() -> Places:  # found again each time, as each command does
        found = Places.from_environ()
        return replace(found, system=replace(found.system, writable=False))

    report = run("install", machine.state, places())
    by_id = {s.id: s for s in report.stores}
    assert by_id["system"].trusted is False
    assert by_id["nss:chromium"].trusted is True
    assert by_id["env"].trusted is True
    assert not report.complete
    [command] = report.commands()
    assert command == (
        f"sudo cp {machine.state}/tls/ca.pem {machine.sys}/anchors/homeport.crt"
        f" && sudo {machine.sys}/update"
    )
    assert list((machine.sys / "anchors").iterdir()) == []  # not touched without the right
    # Run the command as given (minus sudo: this test is the store's owner).
    subprocess.run(command.replace("sudo ", ""), shell=True, check=True, timeout=60)
    assert run("status", machine.state, places()).complete


def test_text_output_names_every_store(machine: Machine, cli: Cli) -> None:
    got = cli("trust")
    assert got.status == 0
    lines = got.stdout.splitlines()
    assert lines[0].startswith(f"homeport local CA: {machine.state}/tls/ca.pem  (sha256 ")
    rows = [line.split()[:2] for line in lines if line.startswith(("system", "nss:", "env"))]
    assert rows == [
        ["system", "yes"],
        ["nss:chromium", "yes"],
        ["nss:firefox:x1y2.default-release", "yes"],
        ["env", "yes"],
    ]
    assert "all 4 stores trust it" in lines
    got = cli("trust", "--uninstall")
    assert "all 4 stores no longer trust it" in got.stdout.splitlines()
    assert cli("trust", "--status", "--uninstall").status == 2  # one action at a time


CHILD = """
import json, os, ssl, sys
ctx = ssl.create_default_context()  # reads SSL_CERT_FILE, as curl and requests do
names = ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
print(json.dumps({k: os.environ.get(k) for k in names}))
print(len(ctx.get_ca_certs()))
"""


def test_child_env_points_at_a_bundle_with_system_roots_and_ours(
    machine: Machine, cli: Cli
) -> None:
    assert child_env(machine.state) == {}
    assert cli("trust").status == 0
    env = child_env(machine.state)
    ca_pem = str(machine.state / "tls" / "ca.pem")
    bundle = str(machine.state / "tls" / "bundle.pem")
    assert env == {
        "NODE_EXTRA_CA_CERTS": ca_pem,
        "SSL_CERT_FILE": bundle,
        "REQUESTS_CA_BUNDLE": bundle,
        "CURL_CA_BUNDLE": bundle,
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert json.loads(out[0]) == env
    # base.pem's root + ours (the system bundle already had ours too: Python dedups)
    assert int(out[1]) == 2
    # the system bundle changes (a new root arrives): the children's bundle follows
    extra = ca.make_root(ca.dt.datetime.now(ca.dt.UTC)).cert_pem()
    system = machine.sys / "bundle.pem"
    system.write_bytes(system.read_bytes() + extra)
    os.utime(system, (system.stat().st_atime, system.stat().st_mtime + 5))
    child_env(machine.state)
    assert extra in Path(bundle).read_bytes()


def test_fallback_verifiers_agree_and_leave_the_databases_alone(machine: Machine) -> None:
    """Without vfychain, NSS is checked with certutil -V on a copy of the database; without
    openssl, bundles with cryptography's verifier. Both give the same answers."""
    assert run("install", machine.state).complete
    found = Places.from_environ()
    listed = {d: certutil("-L", "-d", f"sql:{d}") for d in (machine.chromium, machine.firefox)}
    fallback = replace(found, vfychain=None, openssl=None)
    report = run("status", machine.state, fallback)
    assert {s.id: s.trusted for s in report.stores} == {
        "system": True,
        "nss:chromium": True,
        "nss:firefox:x1y2.default-release": True,
        "env": True,
    }
    details = [s.detail for s in report.stores]
    assert "certutil -V on a copy" in details[1]
    assert "cryptography's verifier" in details[0]
    assert {d: certutil("-L", "-d", f"sql:{d}") for d in listed} == listed
    assert run("uninstall", machine.state).complete
    after = {s.id: s.trusted for s in run("status", machine.state, fallback).stores}
    assert set(after.values()) == {False}


def test_without_certutil_nss_is_reported_unchecked(machine: Machine) -> None:
    places = replace(Places.from_environ(), certutil=None, vfychain=None)
    report = run("install", machine.state, places)
    nss = [s for s in report.stores if s.kind == "nss"]
    assert [s.trusted for s in nss] == [None, None]
    assert all("libnss3-tools" in s.detail for s in nss)
    assert not report.complete
    assert not machine.chromium.exists()


@pytest.mark.skipif(shutil.which("vfychain") is None, reason="vfychain (libnss3-tools) absent")
def test_nss_refuses_a_leaf_outside_the_name_constraints(machine: Machine, tmp_path: Path) -> None:
    """Firefox's and Chromium's database trusts the root for TLS, and NSS still refuses what
    a leaked key could sign for a real name."""
    from homeport.tls.authority import Authority, utcnow
    from homeport.tls.names import LeafSpec, leaf_for
    from homeport.tls.stores import verify_nss

    assert run("install", machine.state).complete
    root = Authority(machine.state).root()
    good, rogue = tmp_path / "good.pem", tmp_path / "rogue.pem"
    good.write_bytes(ca.make_leaf(root, leaf_for("shop.localhost"), utcnow()).cert_pem())
    rogue.write_bytes(
        ca.build_leaf(root, LeafSpec("bank.example", ("bank.example",)), utcnow()).cert_pem()
    )
    places = Places.from_environ()
    db = next(d for d in places.nss if d.id == "nss:chromium")
    assert verify_nss(places, db, good)[0] is True
    trusted, detail = verify_nss(places, db, rogue)
    assert trusted is False, detail


def test_uninstall_after_the_state_dir_was_removed(machine: Machine, cli: Cli) -> None:
    """The stores outlive a deleted state dir: uninstall still finds homeport's roots by
    name (the anchor file, NSS nicknames) and removes them."""
    before = snapshot(machine)
    assert cli("trust").status == 0
    shutil.rmtree(machine.state / "tls")
    got = cli("trust", "--uninstall", "--json")
    assert got.status == 0, got.stdout
    report = json.loads(got.stdout)
    assert report["ca_exists"] is False
    assert set(trusted(report).values()) == {False}
    assert not (machine.sys / "anchors" / "homeport.crt").exists()
    assert "homeport" not in certutil("-L", "-d", f"sql:{machine.firefox}")
    after = snapshot(machine)
    # ~/.pki/nssdb stays (its record went with the state dir) but holds nothing of ours
    assert after["system"] == before["system"]
    assert after["nss"][str(machine.firefox)] == before["nss"][str(machine.firefox)]  # type: ignore[index]
