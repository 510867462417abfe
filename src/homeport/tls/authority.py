"""The local CA on disk: created on first use, leaves issued and cached, renewed before expiry.

Layout under the state dir (mode 0700)::

    tls/ca.pem            the root certificate (what `homeport trust` installs)
    tls/ca-key.pem        its key, mode 0600
    tls/leaves/KEY.pem    a leaf certificate per name (KEY: names.leaf_for)
    tls/leaves/KEY.key    its key, mode 0600
    tls/.lock             flock(2) while the CA is made or a leaf is issued: the daemon and
                          `homeport trust` may both get there first

Files are written to a temporary name and renamed, so a reader never sees half a key. A
leaf is kept in memory after its first read; one with less than ``RENEW_BEFORE`` left (or
issued by another root) is issued again. The clock is injected (``now``) for tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from homeport.errors import EnvironmentProblem
from homeport.tls import ca
from homeport.tls.files import write_private
from homeport.tls.names import LeafSpec

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def tls_dir(state_dir: Path) -> Path:
    return state_dir / "tls"


def ca_cert_path(state_dir: Path) -> Path:
    """Where the root certificate (PEM) is, whether or not it exists yet."""
    return tls_dir(state_dir) / "ca.pem"


@dataclass(frozen=True, slots=True)
class LeafFiles:
    """A leaf on disk, as ``ssl.SSLContext.load_cert_chain`` takes it."""

    spec: LeafSpec
    cert: Path
    key: Path
    not_after: dt.datetime


class Authority:
    """The CA of one state dir. Thread-safe; cheap to build (nothing is read until asked)."""

    def __init__(self, state_dir: Path, now: Clock = utcnow) -> None:
        self.dir = tls_dir(state_dir)
        self.now = now
        self._root: ca.Issued | None = None
        self._leaves: dict[str, LeafFiles] = {}
        self._lock = threading.Lock()

    @property
    def cert_path(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def key_path(self) -> Path:
        return self.dir / "ca-key.pem"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._lock, open(self.dir / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def exists(self) -> bool:
        return self.cert_path.exists()

    def root(self) -> ca.Issued:
        """The root, made on first use."""
        if self._root is None:
            with self._locked():
                self._root = self._load_root() if self.exists() else self._make_root()
        return self._root

    def _make_root(self) -> ca.Issued:
        root = ca.make_root(self.now())
        write_private(self.key_path, root.key_pem())  # the key first: a cert implies a key
        write_private(self.cert_path, root.cert_pem(), 0o644)
        return root

    def _load_root(self) -> ca.Issued:
        try:
            if stat.S_IMODE(self.key_path.stat().st_mode) & 0o077:
                os.chmod(self.key_path, 0o600)  # someone widened it: a CA key is a secret
            return ca.load(self.cert_path.read_bytes(), self.key_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise EnvironmentProblem(
                f"the local CA in {self.dir} cannot be used: {exc}",
                hint=f"move {self.dir} away to make a new CA, then run `homeport trust` again",
            ) from exc

    def renewal_due(self, not_after: dt.datetime, now: dt.datetime) -> bool:
        root_end = self._root.not_after if self._root is not None else None
        return ca.needs_renewal(not_after, now, root_end)

    def leaf(self, spec: LeafSpec) -> LeafFiles:
        """The leaf for ``spec``: from memory, else from disk, else issued; renewed when it
        has less than ``ca.RENEW_BEFORE`` left."""
        now = self.now()
        got = self._leaves.get(spec.key)
        if got is not None and not self.renewal_due(got.not_after, now):
            return got
        root = self.root()
        with self._locked():
            got = self._read_leaf(spec, root, now) or self._issue(spec, root, now)
            self._leaves[spec.key] = got
        return got

    def _paths(self, spec: LeafSpec) -> tuple[Path, Path]:
        d = self.dir / "leaves"
        return d / f"{spec.key}.pem", d / f"{spec.key}.key"

    def _read_leaf(self, spec: LeafSpec, root: ca.Issued, now: dt.datetime) -> LeafFiles | None:
        cert_path, key_path = self._paths(spec)
        try:
            leaf = ca.load(cert_path.read_bytes(), key_path.read_bytes())
        except (OSError, ValueError):
            return None  # absent or damaged: issue it again
        if (
            leaf.cert.issuer != root.cert.subject
            or ca.needs_renewal(leaf.not_after, now, root.not_after)
            or leaf.cert.not_valid_before_utc > now
        ):
            return None
        return LeafFiles(spec, cert_path, key_path, leaf.not_after)

    def _issue(self, spec: LeafSpec, root: ca.Issued, now: dt.datetime) -> LeafFiles:
        leaf = ca.make_leaf(root, spec, now)
        cert_path, key_path = self._paths(spec)
        cert_path.parent.mkdir(mode=0o700, exist_ok=True)
        write_private(key_path, leaf.key_pem(), durable=False)
        write_private(cert_path, leaf.cert_pem(), 0o644, durable=False)
        return LeafFiles(spec, cert_path, key_path, leaf.not_after)

    def cached_leaves(self) -> list[tuple[str, dt.datetime]]:
        """(key, not_after) of every leaf on disk, for the doctor."""
        from cryptography import x509

        out: list[tuple[str, dt.datetime]] = []
        for p in sorted((self.dir / "leaves").glob("*.pem")):
            with contextlib.suppress(OSError, ValueError):
                cert = x509.load_pem_x509_certificate(p.read_bytes())
                out.append((p.stem, cert.not_valid_after_utc))
        return out
