"""Where the trust stores are: the system store by platform and tools, NSS databases under
a HOME, and the one command a person runs for a store homeport cannot change."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from homeport.tls.places import (
    SystemStore,
    detect_system,
    find_nss,
    manual_command,
    manual_uninstall_command,
)

CA = Path("/s/tls/ca.pem")


def which_only(*names: str):  # type: ignore[no-untyped-def]
    return lambda name: f"/usr/bin/{name}" if name in names else None


def test_override_dir_is_a_debian_style_store(tmp_path: Path) -> None:
    env = {
        "HOMEPORT_SYSTEM_CA_DIR": str(tmp_path),
        "HOMEPORT_SYSTEM_CA_UPDATE": "/bin/true --quiet",
        "HOMEPORT_SYSTEM_CA_BUNDLE": str(tmp_path / "b.pem"),
    }
    s = detect_system(env, which_only(), "darwin", 1000)
    assert s == SystemStore("debian", tmp_path, ("/bin/true", "--quiet"), tmp_path / "b.pem", True)
    assert s.anchor == tmp_path / "homeport.crt"


@pytest.mark.parametrize(
    ("platform", "tools", "flavor"),
    [
        ("darwin", (), "macos"),
        ("win32", (), "windows"),
        ("linux", ("trust",), "p11-kit"),
        ("linux", (), "unknown"),
    ],
)
def test_flavor_by_platform_and_tools(platform: str, tools: tuple[str, ...], flavor: str) -> None:
    s = detect_system({}, which_only(*tools), platform, 0)
    assert s.flavor == flavor
    assert s.writable is (flavor == "p11-kit")  # as root; macOS and Windows are on paper


def test_p11_kit_needs_root() -> None:
    assert detect_system({}, which_only("trust"), "linux", 1000).writable is False


def test_commands_for_each_store() -> None:
    deb = SystemStore(
        "debian", Path("/usr/local/share/ca-certificates"), ("update-ca-certificates",), None, False
    )
    assert manual_command(deb, CA) == (
        "sudo cp /s/tls/ca.pem /usr/local/share/ca-certificates/homeport.crt"
        " && sudo update-ca-certificates"
    )
    assert manual_uninstall_command(deb, CA) == (
        "sudo rm -f /usr/local/share/ca-certificates/homeport.crt && sudo update-ca-certificates"
    )
    p11 = SystemStore("p11-kit", None, (), None, False)
    assert manual_command(p11, CA) == "sudo trust anchor --store /s/tls/ca.pem"
    assert manual_uninstall_command(p11, CA) == "sudo trust anchor --remove /s/tls/ca.pem"
    mac = SystemStore("macos", None, (), None, False)
    assert manual_command(mac, CA) == (
        "sudo security add-trusted-cert -d -r trustRoot"
        " -k /Library/Keychains/System.keychain /s/tls/ca.pem"
    )
    win = SystemStore("windows", None, (), None, False)
    assert manual_command(win, CA) == "certutil -addstore -user Root /s/tls/ca.pem"
    assert manual_command(SystemStore("unknown", None, (), None, False), CA) is None


def test_paths_with_spaces_are_quoted() -> None:
    p11 = SystemStore("p11-kit", None, (), None, False)
    assert (
        manual_command(p11, Path("/my state/ca.pem"))
        == "sudo trust anchor --store '/my state/ca.pem'"
    )


def _db(d: Path, name: str = "cert9.db") -> None:
    d.mkdir(parents=True)
    sqlite3.connect(d / name).close()


def test_nss_databases_under_home(tmp_path: Path) -> None:
    _db(tmp_path / ".mozilla/firefox/a1.default-release")
    _db(tmp_path / ".mozilla/firefox/b2.old", "cert8.db")
    (tmp_path / ".mozilla/firefox/c3.never-started").mkdir()
    _db(tmp_path / "snap/firefox/common/.mozilla/firefox/d4.snap")
    _db(tmp_path / ".var/app/org.mozilla.firefox/.mozilla/firefox/e5.flat")
    _db(tmp_path / "snap/chromium/current/.pki/nssdb")
    found = {d.id: d for d in find_nss(tmp_path)}
    assert list(found) == [
        "nss:chromium",
        "nss:chromium-snap",
        "nss:firefox:a1.default-release",
        "nss:firefox:b2.old",
        "nss:firefox:d4.snap",
        "nss:firefox:e5.flat",
    ]
    assert found["nss:chromium"].exists is False  # listed anyway: install makes it
    assert found["nss:firefox:b2.old"].spec == f"dbm:{tmp_path}/.mozilla/firefox/b2.old"
    assert found["nss:firefox:a1.default-release"].spec.startswith("sql:")
