"""Where this user's programs look for trusted roots: found once, then passed around.

``Places`` is everything the trust code may touch; ``Places.from_environ()`` finds it from
the process (HOME, the overrides below, the platform, the tools on PATH) with reads only:
``stat`` and directory listings, no subprocess. ``manual_command`` and friends are pure.
Tests build it from a temporary HOME and a temporary system-store dir and never reach the
real ones.

Overrides (environment variables)::

    HOMEPORT_SYSTEM_CA_DIR      the anchor directory (Debian: /usr/local/share/ca-certificates)
    HOMEPORT_SYSTEM_CA_UPDATE   the command that rebuilds the system bundle (update-ca-certificates)
    HOMEPORT_SYSTEM_CA_BUNDLE   the bundle programs read (/etc/ssl/certs/ca-certificates.crt)
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from homeport.tls.env import BUNDLE_ENV, system_bundle

SystemFlavor = Literal["debian", "p11-kit", "macos", "windows", "unknown"]
DIR_ENV = "HOMEPORT_SYSTEM_CA_DIR"
UPDATE_ENV = "HOMEPORT_SYSTEM_CA_UPDATE"
DEBIAN_DIR = "/usr/local/share/ca-certificates"
#: update-ca-certificates reads only *.crt files in its directory.
ANCHOR_NAME = "homeport.crt"


@dataclass(frozen=True, slots=True)
class SystemStore:
    flavor: SystemFlavor
    #: Debian: the directory our anchor file goes into.
    anchor_dir: Path | None
    #: The command that rebuilds the bundle after the anchor changes (Debian).
    update: tuple[str, ...]
    #: The bundle OpenSSL-based programs read: what the check verifies against.
    bundle: Path | None
    #: May this process change it (root, or a writable override dir)?
    writable: bool

    @property
    def anchor(self) -> Path | None:
        return self.anchor_dir / ANCHOR_NAME if self.anchor_dir else None


@dataclass(frozen=True, slots=True)
class NssDb:
    """One NSS certificate database: ``sql:DIR`` (cert9.db) or legacy ``dbm:DIR`` (cert8.db)."""

    id: str
    title: str
    dir: Path
    exists: bool
    legacy: bool = False

    @property
    def spec(self) -> str:
        return f"{'dbm' if self.legacy else 'sql'}:{self.dir}"


@dataclass(frozen=True, slots=True)
class Places:
    home: Path
    system: SystemStore
    nss: tuple[NssDb, ...]
    certutil: str | None
    vfychain: str | None
    openssl: str | None

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str] | None = None,
        which: Callable[[str], str | None] = shutil.which,
        platform: str = sys.platform,
        euid: int | None = None,
    ) -> Places:
        environ = os.environ if environ is None else environ
        home = Path(environ.get("HOME") or Path.home())
        if euid is None:
            euid = os.geteuid() if hasattr(os, "geteuid") else -1
        return cls(
            home=home,
            system=detect_system(environ, which, platform, euid),
            nss=find_nss(home),
            certutil=which("certutil") if platform.startswith("linux") else None,
            vfychain=which("vfychain") if platform.startswith("linux") else None,
            openssl=which("openssl"),
        )


def detect_system(
    environ: Mapping[str, str], which: Callable[[str], str | None], platform: str, euid: int
) -> SystemStore:
    """Which system store this machine has, and how to change it."""
    bundle = system_bundle(environ)
    explicit = environ.get(DIR_ENV)
    if explicit:  # an override is a Debian-style anchor dir wherever we are
        d = Path(explicit)
        update = tuple(shlex.split(environ.get(UPDATE_ENV, "update-ca-certificates")))
        return SystemStore("debian", d, update, bundle, os.access(d, os.W_OK))
    if platform == "darwin":
        return SystemStore("macos", None, (), bundle, False)
    if platform.startswith("win"):
        return SystemStore("windows", None, (), None, False)
    update_cmd = environ.get(UPDATE_ENV)
    if which("update-ca-certificates") and os.path.isdir(DEBIAN_DIR):
        update = tuple(shlex.split(update_cmd or "update-ca-certificates"))
        return SystemStore("debian", Path(DEBIAN_DIR), update, bundle, euid == 0)
    if which("trust"):  # p11-kit: Fedora, RHEL, Arch, openSUSE
        return SystemStore("p11-kit", None, (), bundle, euid == 0)
    return SystemStore("unknown", None, (), bundle, False)


#: Firefox keeps profiles here (plain, snap, flatpak); each profile has its own database.
FIREFOX_ROOTS: tuple[str, ...] = (
    ".mozilla/firefox",
    "snap/firefox/common/.mozilla/firefox",
    ".var/app/org.mozilla.firefox/.mozilla/firefox",
)
#: Chromium and Chrome on Linux share ~/.pki/nssdb; the snap has its own.
CHROMIUM_DBS: tuple[tuple[str, str], ...] = (
    ("nss:chromium", ".pki/nssdb"),
    ("nss:chromium-snap", "snap/chromium/current/.pki/nssdb"),
)


def find_nss(home: Path) -> tuple[NssDb, ...]:
    """Every NSS database of this user. ``~/.pki/nssdb`` is listed even when absent: it is
    made on install, so a Chromium started later finds the root already there."""
    out: list[NssDb] = []
    for i, (db_id, rel) in enumerate(CHROMIUM_DBS):
        d = home / rel
        present = (d / "cert9.db").exists()
        if present or i == 0:
            out.append(NssDb(db_id, f"Chromium/Chrome NSS database ~/{rel}", d, present))
    for rel in FIREFOX_ROOTS:
        root = home / rel
        if not root.is_dir():
            continue
        for profile in sorted(p for p in root.iterdir() if p.is_dir()):
            sql, dbm = (profile / "cert9.db").exists(), (profile / "cert8.db").exists()
            if sql or dbm:
                out.append(
                    NssDb(
                        f"nss:firefox:{profile.name}",
                        f"Firefox profile {profile.name}",
                        profile,
                        True,
                        legacy=dbm and not sql,
                    )
                )
    return tuple(out)


def manual_command(system: SystemStore, ca: Path) -> str | None:
    """The one command that trusts ``ca`` in the system store, for a person to run."""
    q = shlex.quote(str(ca))
    if system.flavor == "debian" and system.anchor is not None:
        update = shlex.join(system.update)
        return f"sudo cp {q} {shlex.quote(str(system.anchor))} && sudo {update}"
    if system.flavor == "p11-kit":
        return f"sudo trust anchor --store {q}"
    if system.flavor == "macos":
        return (
            "sudo security add-trusted-cert -d -r trustRoot"
            f" -k /Library/Keychains/System.keychain {q}"
        )
    if system.flavor == "windows":
        return f"certutil -addstore -user Root {q}"
    return None


def manual_uninstall_command(system: SystemStore, ca: Path) -> str | None:
    q = shlex.quote(str(ca))
    if system.flavor == "debian" and system.anchor is not None:
        return f"sudo rm -f {shlex.quote(str(system.anchor))} && sudo {shlex.join(system.update)}"
    if system.flavor == "p11-kit":
        return f"sudo trust anchor --remove {q}"
    if system.flavor == "macos":
        return f"sudo security remove-trusted-cert -d {q}"
    if system.flavor == "windows":
        return "certutil -delstore -user Root 'homeport local development CA'"
    return None


__all__ = [
    "ANCHOR_NAME",
    "BUNDLE_ENV",
    "DIR_ENV",
    "UPDATE_ENV",
    "NssDb",
    "Places",
    "SystemStore",
    "detect_system",
    "find_nss",
    "manual_command",
    "manual_uninstall_command",
]
