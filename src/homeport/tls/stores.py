"""Install, check and remove the local CA's root in every store this user's programs read.

Stores (ids as ``homeport trust --json`` reports them)::

    system                the OS store: Debian/Ubuntu anchor file + update-ca-certificates,
                          Fedora/Arch `trust anchor`; macOS and Windows: the command to run
    nss:chromium          ~/.pki/nssdb (Chromium and Chrome on Linux), made when absent
    nss:firefox:PROFILE   every Firefox profile's database (plain, snap, flatpak)
    env                   tls/bundle.pem (system bundle + our root) and the variables
                          `homeport run` gives its children (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE …)

Whether a store trusts the CA is always *checked*, never inferred from a file being there: a
throwaway leaf is verified against the store (``openssl verify -CAfile BUNDLE`` for the
system and env bundles, ``vfychain`` on the NSS database, or ``certutil -V`` on a copy of it).
Only the system store needs root; without it the others are done and the one command for
the rest is reported. ``tls/trust.json`` remembers NSS databases that install created, so
uninstall can remove them again when nothing else was put into them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from homeport.tls import env as child
from homeport.tls.authority import Authority
from homeport.tls.names import leaf_for
from homeport.tls.places import (
    NssDb,
    Places,
    SystemStore,
    manual_command,
    manual_uninstall_command,
)

log = logging.getLogger("homeport.tls")

Action = Literal["install", "status", "uninstall"]
TIMEOUT = 60.0
#: Every root homeport makes has a subject CN starting so; uninstall removes each one.
NICK_PREFIX = "homeport local development CA"
CHECK_NAME = "homeport-trust-check.localhost"


@dataclass(frozen=True, slots=True)
class StoreState:
    """One store after an action: whether it trusts the CA, checked by verifying a leaf."""

    id: str
    kind: Literal["system", "nss", "env"]
    title: str
    location: str
    #: True/False from a verification; None when it could not be checked here.
    trusted: bool | None
    detail: str = ""
    #: What this action changed in it ("installed", "removed", "created", or "").
    changed: str = ""
    #: The command a person runs to finish this store (root needed, or on paper).
    command: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "location": self.location,
            "trusted": self.trusted,
            "detail": self.detail,
            "changed": self.changed,
            "command": self.command,
        }


@dataclass(frozen=True, slots=True)
class TrustReport:
    action: Action
    ca_cert: Path
    ca_exists: bool
    fingerprint: str | None
    not_after: str | None
    stores: tuple[StoreState, ...]

    @property
    def complete(self) -> bool:
        """Every store is in the state the action asked for."""
        want = self.action != "uninstall"
        return all(s.trusted is want for s in self.stores)

    def commands(self) -> list[str]:
        return [s.command for s in self.stores if s.command]

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "ca_cert": str(self.ca_cert),
            "ca_exists": self.ca_exists,
            "ca_fingerprint_sha256": self.fingerprint,
            "ca_not_after": self.not_after,
            "complete": self.complete,
            "stores": [s.to_json() for s in self.stores],
            "commands": self.commands(),
        }


# ---------------------------------------------------------------- subprocess edge


def _run(argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=TIMEOUT, check=False, **kw
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(list(argv), 127, "", str(exc))


def _why(p: subprocess.CompletedProcess[str]) -> str:
    text = (p.stderr or p.stdout).strip().splitlines()
    return f"`{' '.join(p.args)}` exited {p.returncode}" + (f": {text[-1]}" if text else "")


# ---------------------------------------------------------------- verification


def verify_bundle(places: Places, bundle: Path | None, leaf: Path) -> tuple[bool | None, str]:
    """Does an OpenSSL program reading ``bundle`` accept ``leaf``?"""
    if bundle is None or not bundle.is_file():
        return False, f"no bundle at {bundle}" if bundle else "no system CA bundle found"
    if places.openssl:
        p = _run(
            [places.openssl, "verify", "-purpose", "sslserver", "-CAfile", str(bundle), str(leaf)]
        )
        if p.returncode == 0:
            return True, f"a leaf verifies against {bundle} (openssl verify)"
        return False, f"a leaf does not verify against {bundle}: {_last(p)}"
    return _verify_in_python(bundle, leaf)


def _last(p: subprocess.CompletedProcess[str]) -> str:
    lines = [x for x in (p.stdout + p.stderr).splitlines() if x.strip()]
    return next((x for x in lines if x.startswith("error")), lines[-1] if lines else "failed")


def _verify_in_python(bundle: Path, leaf: Path) -> tuple[bool | None, str]:
    from cryptography import x509
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    try:
        store = Store(x509.load_pem_x509_certificates(bundle.read_bytes()))
        cert = x509.load_pem_x509_certificate(leaf.read_bytes())
        PolicyBuilder().store(store).build_server_verifier(x509.DNSName(CHECK_NAME)).verify(
            cert, []
        )
    except VerificationError as exc:
        return False, f"a leaf does not verify against {bundle}: {exc}"
    except (OSError, ValueError) as exc:
        return None, f"{bundle} could not be read: {exc}"
    return True, f"a leaf verifies against {bundle} (cryptography's verifier)"


def verify_nss(places: Places, db: NssDb, leaf: Path) -> tuple[bool | None, str]:
    """Does NSS with this database accept ``leaf`` for a TLS server?"""
    if not db.exists:
        return False, "no database yet"
    if places.vfychain:
        # -u 1: certUsageSSLServer; -pp: libpkix, as Firefox and Chromium-on-NSS verify.
        p = _run([places.vfychain, "-d", db.spec, "-a", "-u", "1", "-pp", str(leaf)])
        if p.returncode == 0 and "Chain is good" in p.stdout + p.stderr:
            return True, "a leaf verifies against it (vfychain)"
        return False, f"a leaf does not verify against it (vfychain: {_nss_error(p)})"
    if places.certutil:
        return _verify_with_certutil(places.certutil, db, leaf)
    return None, "certutil is not installed (Debian: apt install libnss3-tools)"


def _nss_error(p: subprocess.CompletedProcess[str]) -> str:
    lines = [x.strip() for x in (p.stdout + p.stderr).splitlines()]
    return next((x for x in lines if x.startswith("ERROR")), lines[-1] if lines else "failed")


def _verify_with_certutil(certutil: str, db: NssDb, leaf: Path) -> tuple[bool | None, str]:
    """``certutil -V`` verifies a certificate held in the database: add the leaf to a copy,
    so the user's database is only read."""
    with tempfile.TemporaryDirectory(prefix="homeport-nss-") as tmp:
        for name in ("cert9.db", "key4.db", "pkcs11.txt", "cert8.db", "key3.db", "secmod.db"):
            if (db.dir / name).exists():
                shutil.copy2(db.dir / name, Path(tmp) / name)
        spec = f"{'dbm' if db.legacy else 'sql'}:{tmp}"
        add = _run([certutil, "-A", "-d", spec, "-n", CHECK_NAME, "-t", ",,", "-i", str(leaf)])
        if add.returncode != 0:
            return None, f"could not check: {_why(add)}"
        p = _run([certutil, "-V", "-u", "V", "-d", spec, "-n", CHECK_NAME])
        if p.returncode == 0:
            return True, "a leaf verifies against it (certutil -V on a copy)"
        return False, f"a leaf does not verify against it (certutil -V: {_nss_error(p)})"


# ---------------------------------------------------------------- NSS databases


def nss_nicknames(certutil: str, db: NssDb) -> list[str]:
    """Nicknames of homeport's roots in ``db`` (``certutil -L``: NAME padded, then flags)."""
    p = _run([certutil, "-L", "-d", db.spec])
    out: list[str] = []
    for line in p.stdout.splitlines():
        if line.startswith(NICK_PREFIX):
            out.append(line.rsplit(None, 1)[0].strip())
    return out


def _nss_install(places: Places, db: NssDb, ca: Path, nick: str) -> tuple[NssDb, str, str]:
    """(db, changed, error)."""
    assert places.certutil is not None
    changed = ""
    if not db.exists:
        db.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        p = _run([places.certutil, "-N", "--empty-password", "-d", db.spec])
        if p.returncode != 0:
            return db, "", _why(p)
        db, changed = replace(db, exists=True), "created"
    if nick in nss_nicknames(places.certutil, db):
        return db, changed, ""
    # -t C,,: a trusted CA for TLS servers only (not for mail or code signing).
    p = _run([places.certutil, "-A", "-d", db.spec, "-t", "C,,", "-n", nick, "-i", str(ca)])
    if p.returncode != 0:
        return db, changed, _why(p)
    return db, changed or "installed", ""


def _nss_uninstall(places: Places, db: NssDb) -> tuple[str, str]:
    """(changed, error): every homeport root leaves the database."""
    assert places.certutil is not None
    changed = ""
    for nick in nss_nicknames(places.certutil, db):
        p = _run([places.certutil, "-D", "-d", db.spec, "-n", nick])
        if p.returncode != 0:
            return changed, _why(p)
        changed = "removed"
    return changed, ""


def _nss_is_empty(places: Places, db: NssDb) -> bool:
    assert places.certutil is not None
    certs = _run([places.certutil, "-L", "-d", db.spec]).stdout.splitlines()[4:]
    keys = _run([places.certutil, "-K", "-d", db.spec])
    return not any(x.strip() for x in certs) and "no keys" in (keys.stdout + keys.stderr).lower()


# ---------------------------------------------------------------- the trust record


def _record_path(state_dir: Path) -> Path:
    return state_dir / "tls" / "trust.json"


def _read_record(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads(_record_path(state_dir).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_record(state_dir: Path, data: dict[str, Any]) -> None:
    from homeport.tls.files import write_private

    write_private(_record_path(state_dir), json.dumps(data, indent=2).encode())


# ---------------------------------------------------------------- the system store


def _system_install(system: SystemStore, ca: Path) -> tuple[str, str]:
    """(changed, error); only called when the store is writable."""
    if system.flavor == "debian" and system.anchor is not None:
        data = ca.read_bytes()
        old = system.anchor.read_bytes() if system.anchor.exists() else None
        if old != data:
            system.anchor.write_bytes(data)
            system.anchor.chmod(0o644)
        p = _run(system.update)
        return ("installed" if old != data else ""), ("" if p.returncode == 0 else _why(p))
    if system.flavor == "p11-kit":
        p = _run(["trust", "anchor", "--store", str(ca)])
        return ("installed", "") if p.returncode == 0 else ("", _why(p))
    return "", f"homeport cannot change the {system.flavor} store itself"


def _system_uninstall(system: SystemStore, ca: Path) -> tuple[str, str]:
    if system.flavor == "debian" and system.anchor is not None:
        if not system.anchor.exists():
            return "", ""
        system.anchor.unlink()
        p = _run(system.update)
        return "removed", ("" if p.returncode == 0 else _why(p))
    if system.flavor == "p11-kit":
        p = _run(["trust", "anchor", "--remove", str(ca)])
        return ("removed", "") if p.returncode == 0 else ("", _why(p))
    return "", f"homeport cannot change the {system.flavor} store itself"


def _system_title(system: SystemStore) -> tuple[str, str]:
    if system.flavor == "debian":
        return "system store (update-ca-certificates)", str(system.anchor)
    if system.flavor == "p11-kit":
        return "system store (p11-kit trust anchor)", str(system.bundle or "")
    if system.flavor == "macos":
        return "macOS System keychain", "/Library/Keychains/System.keychain"
    if system.flavor == "windows":
        return "Windows user Root store", "Cert:\\CurrentUser\\Root"
    return "system store (not recognised here)", str(system.bundle or "")


# ---------------------------------------------------------------- the actions


@contextlib.contextmanager
def _check_leaf(authority: Authority) -> Iterator[Path]:
    """A throwaway leaf from the CA, in a temporary file, to verify against each store."""
    from homeport.tls import ca

    root = authority.root()
    leaf = ca.make_leaf(root, leaf_for(CHECK_NAME), authority.now())
    with tempfile.TemporaryDirectory(prefix="homeport-trust-") as tmp:
        path = Path(tmp) / "leaf.pem"
        path.write_bytes(leaf.cert_pem())
        yield path


def run(action: Action, state_dir: Path, places: Places | None = None) -> TrustReport:
    """Install, check or remove the root in every store; each store's state is then checked
    by verifying a leaf against it. ``status`` and ``uninstall`` never create the CA."""
    places = places or Places.from_environ()
    authority = Authority(state_dir)
    ca_path = authority.cert_path
    if action != "install" and not authority.exists():
        return _without_ca(action, places, ca_path, state_dir)
    root = authority.root()
    record = _read_record(state_dir)
    states: list[StoreState] = []
    with _check_leaf(authority) as leaf:
        states.append(_system(action, places, ca_path, leaf))
        states.extend(_nss(action, places, ca_path, root.common_name(), leaf, record))
        states.append(_env(action, places, state_dir, leaf))
    if action != "status":
        _write_record(state_dir, record)
    return TrustReport(
        action,
        ca_path,
        True,
        root.fingerprint(),
        root.not_after.isoformat(),
        tuple(states),
    )


def _without_ca(action: Action, places: Places, ca_path: Path, state_dir: Path) -> TrustReport:
    if action == "uninstall":
        return _uninstall_without_ca(places, ca_path, state_dir)
    title, location = _system_title(places.system)
    why = "there is no local CA yet: `homeport trust` makes and installs it"
    stores = [StoreState("system", "system", title, location, False, why)]
    stores += [StoreState(d.id, "nss", d.title, str(d.dir), False, why) for d in places.nss]
    stores.append(_env_state(state_dir, False, why))
    return TrustReport(action, ca_path, False, None, None, tuple(stores))


def _uninstall_without_ca(places: Places, ca_path: Path, state_dir: Path) -> TrustReport:
    """The state dir was removed but the stores may still hold a homeport root: remove what
    can be found by name (the anchor file, NSS nicknames). With no CA there is no leaf to
    verify with, so these stores are reported by what is left in them."""
    why = "no local CA to verify with"
    system = places.system
    title, location = _system_title(system)
    if system.flavor == "debian" and system.anchor is not None:
        changed, error, command = "", "", None
        if system.anchor.exists():
            if system.writable:
                changed, error = _system_uninstall(system, ca_path)
            else:
                command = manual_uninstall_command(system, ca_path)
        left = system.anchor.exists()
        detail = f"{why}; the anchor file is {'still there' if left else 'gone'}"
        sys_state = StoreState(
            "system",
            "system",
            title,
            location,
            left,
            f"{error}; {detail}" if error else detail,
            changed,
            command,
        )
    else:
        sys_state = StoreState("system", "system", title, location, None, why)
    stores = [sys_state]
    for db in places.nss:
        if places.certutil is None or not db.exists:
            trusted = None if places.certutil is None else False
            stores.append(StoreState(db.id, "nss", db.title, str(db.dir), trusted, why))
            continue
        changed, error = _nss_uninstall(places, db)
        left = bool(nss_nicknames(places.certutil, db))
        detail = f"{why}; {'a homeport root is still in it' if left else 'no homeport root in it'}"
        stores.append(
            StoreState(db.id, "nss", db.title, str(db.dir), left, error or detail, changed)
        )
    bundle = child.bundle_path(state_dir)
    with contextlib.suppress(OSError):
        bundle.unlink()
    stores.append(_env_state(state_dir, False, "no bundle: children get no CA variables"))
    return TrustReport("uninstall", ca_path, False, None, None, tuple(stores))


def _system(action: Action, places: Places, ca: Path, leaf: Path) -> StoreState:
    system = places.system
    title, location = _system_title(system)
    changed, error, command = "", "", None
    if action != "status":
        if system.writable:
            do = _system_install if action == "install" else _system_uninstall
            changed, error = do(system, ca)
        else:
            make = manual_command if action == "install" else manual_uninstall_command
            command = make(system, ca)
    trusted, detail = verify_bundle(places, system.bundle, leaf)
    if system.flavor in ("macos", "windows"):
        trusted, detail = None, "not checked here: homeport changes this store only on paper"
    if error:
        detail = f"{error}; {detail}"
    done = trusted is (action != "uninstall")
    if action != "status" and done:
        command = None  # already as asked: nothing for the person to run
    elif action == "status" and not trusted:
        command = manual_command(system, ca) if not system.writable else "homeport trust"
    if not system.writable and command and action != "status":
        detail += "; needs root"
    return StoreState("system", "system", title, location, trusted, detail, changed, command)


def _nss(
    action: Action,
    places: Places,
    ca: Path,
    nick: str,
    leaf: Path,
    record: dict[str, Any],
) -> list[StoreState]:
    created: list[str] = list(record.get("created_nss", []))
    out: list[StoreState] = []
    for db in places.nss:
        changed, error = "", ""
        if places.certutil is None:
            out.append(
                StoreState(
                    db.id,
                    "nss",
                    db.title,
                    str(db.dir),
                    None,
                    "certutil is not installed (Debian: apt install libnss3-tools;"
                    " Fedora: dnf install nss-tools)",
                )
            )
            continue
        if action == "install":
            db, changed, error = _nss_install(places, db, ca, nick)
            if changed == "created" and str(db.dir) not in created:
                created.append(str(db.dir))
        elif action == "uninstall" and db.exists:
            changed, error = _nss_uninstall(places, db)
            if str(db.dir) in created and _nss_is_empty(places, db):
                _remove_created_db(db, places.home)
                created.remove(str(db.dir))
                db, changed = replace(db, exists=False), "removed (homeport had created it)"
        trusted, detail = verify_nss(places, db, leaf)
        if error:
            detail = f"{error}; {detail}"
        command = "homeport trust" if action == "status" and not trusted else None
        out.append(
            StoreState(db.id, "nss", db.title, str(db.dir), trusted, detail, changed, command)
        )
    record["created_nss"] = created
    return out


def _remove_created_db(db: NssDb, home: Path) -> None:
    """Remove a database homeport created, and the empty parents it created (not HOME)."""
    for name in ("cert9.db", "key4.db", "pkcs11.txt"):
        with contextlib.suppress(FileNotFoundError):
            (db.dir / name).unlink()
    d = db.dir
    while d != home and home in d.parents:
        try:
            d.rmdir()
        except OSError:
            break
        d = d.parent


def _env_state(state_dir: Path, trusted: bool | None, detail: str, changed: str = "") -> StoreState:
    names = ", ".join(n for n, _ in child.VARIABLES)
    return StoreState(
        "env",
        "env",
        f"children of `homeport run` ({names})",
        str(child.bundle_path(state_dir)),
        trusted,
        detail,
        changed,
    )


def _env(action: Action, places: Places, state_dir: Path, leaf: Path) -> StoreState:
    bundle = child.bundle_path(state_dir)
    changed = ""
    if action == "install":
        existed = bundle.exists()
        base = places.system.bundle
        child.write_bundle(state_dir, {child.BUNDLE_ENV: str(base)} if base else {})
        changed = "" if existed else "installed"
    elif action == "uninstall" and bundle.exists():
        bundle.unlink()
        changed = "removed"
    if not bundle.exists():
        state = _env_state(state_dir, False, "no bundle: children get no CA variables", changed)
        return replace(state, command="homeport trust") if action == "status" else state
    trusted, detail = verify_bundle(places, bundle, leaf)
    return _env_state(state_dir, trusted, detail, changed)
