"""The CA for children of ``homeport run``: environment variables and a merged bundle.

Node reads ``NODE_EXTRA_CA_CERTS`` *in addition* to its own roots; OpenSSL-based clients
(Python's ssl, curl, Ruby, PHP) read ``SSL_CERT_FILE`` *instead of* the system's bundle, and
requests/httpx read ``REQUESTS_CA_BUNDLE``, curl ``CURL_CA_BUNDLE``. So the bundle these point
at is the system bundle with our root appended (``tls/bundle.pem``), and it is rewritten when
either part is newer than it. ``homeport trust`` writes it, ``--uninstall`` removes it; with
no bundle, ``child_env`` adds nothing, so children see the user's own environment unchanged.

Nothing here imports ``cryptography`` or ``ssl``: ``child_env`` is on `homeport run`'s path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

#: Where OpenSSL-based programs find the system's roots, by distribution; the first that
#: exists wins. ``HOMEPORT_SYSTEM_CA_BUNDLE`` overrides (tests point it at a temp file).
SYSTEM_BUNDLES: tuple[str, ...] = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Alpine, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, Alpine, BSDs
)
BUNDLE_ENV = "HOMEPORT_SYSTEM_CA_BUNDLE"
#: The variables ``child_env`` sets, and the file each one names.
VARIABLES: tuple[tuple[str, str], ...] = (
    ("NODE_EXTRA_CA_CERTS", "ca"),
    ("SSL_CERT_FILE", "bundle"),
    ("REQUESTS_CA_BUNDLE", "bundle"),
    ("CURL_CA_BUNDLE", "bundle"),
)


def bundle_path(state_dir: Path) -> Path:
    return state_dir / "tls" / "bundle.pem"


def system_bundle(environ: Mapping[str, str] | None = None) -> Path | None:
    """The system's CA bundle file, or None when none of the known places has one."""
    environ = os.environ if environ is None else environ
    explicit = environ.get(BUNDLE_ENV)
    if explicit:
        return Path(explicit)
    return next((Path(p) for p in SYSTEM_BUNDLES if os.path.isfile(p)), None)


def merged(system: bytes, root: bytes) -> bytes:
    """Pure: the system bundle with our root appended (each PEM block ends in a newline)."""
    if system and not system.endswith(b"\n"):
        system += b"\n"
    return system + root


def write_bundle(state_dir: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Write ``tls/bundle.pem`` from the system bundle and our root (``tls/ca.pem``)."""
    from homeport.tls.files import write_private

    base = system_bundle(environ)
    system = base.read_bytes() if base is not None and base.is_file() else b""
    root = (state_dir / "tls" / "ca.pem").read_bytes()
    path = bundle_path(state_dir)
    write_private(path, merged(system, root), 0o644)
    return path


def _mtime(path: Path | None) -> float:
    try:
        return path.stat().st_mtime if path is not None else 0.0
    except OSError:
        return 0.0


def child_env(state_dir: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables to merge into a child's environment so it trusts the gateway, or {}
    when ``homeport trust`` has not installed the children's bundle."""
    bundle = bundle_path(state_dir)
    ca = state_dir / "tls" / "ca.pem"
    stamp = _mtime(bundle)
    if not stamp or not ca.is_file():
        return {}
    if max(_mtime(ca), _mtime(system_bundle(environ))) > stamp:
        # The system bundle was updated (or the CA replaced): merge again. A bundle that
        # cannot be rewritten still trusts the gateway; the doctor reports the rest.
        with contextlib.suppress(OSError):
            write_bundle(state_dir, environ)
    files = {"ca": str(ca), "bundle": str(bundle)}
    return {name: files[kind] for name, kind in VARIABLES}


def for_child(state_dir: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``child_env`` weighed against the variables already set: one the user set to a file
    of their own is kept; one that names the system bundle (some machines set all of them
    so) is pointed at our bundle instead, which holds the same roots plus ours."""
    environ = os.environ if environ is None else environ
    ours = child_env(state_dir, environ)
    if not ours:
        return {}
    system = system_bundle(environ)
    out: dict[str, str] = {}
    for name, value in ours.items():
        theirs = environ.get(name)
        if not theirs:
            out[name] = value
        elif system is not None and _same_file(theirs, system):
            out[name] = str(bundle_path(state_dir))
    return out


def _same_file(a: str, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
