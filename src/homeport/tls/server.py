"""The gateway's TLS server context: one leaf per SNI name, from the local CA.

``server_context(state_dir)`` is the seam the daemon calls. The context it returns offers
TLS 1.2 and 1.3, ALPN ``h2`` then ``http/1.1``, and serves the default leaf (``localhost``,
127.0.0.1, ::1) until its SNI callback swaps in the leaf for the requested name, issued on
first use and kept per leaf key. Names the CA may not sign keep the default leaf, so such a
client sees a name mismatch, never a certificate for a name it did not ask about.

The callback runs inside OpenSSL's ClientHello processing, before ALPN is selected
(``tls_handle_alpn`` runs after the servername callback), and reads ALPN from the context it
switched to: every leaf context is configured the same way (``_configure``).
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import threading
from pathlib import Path

from homeport.tls.authority import Authority, Clock, LeafFiles, utcnow
from homeport.tls.names import DEFAULT_LEAF, LeafSpec, leaf_for

log = logging.getLogger("homeport.tls")

ALPN = ("h2", "http/1.1")


def _configure(ctx: ssl.SSLContext) -> None:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(list(ALPN))
    # RFC 9113 §9.2.2: h2 over TLS 1.2 needs ephemeral key exchange and AEAD ciphers.
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")


def _leaf_context(files: LeafFiles) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _configure(ctx)
    ctx.load_cert_chain(files.cert, files.key)
    return ctx


class LeafContexts:
    """SNI name -> the SSLContext holding its leaf, issued or renewed as needed."""

    def __init__(self, authority: Authority) -> None:
        self.authority = authority
        self._contexts: dict[str, tuple[ssl.SSLContext, dt.datetime]] = {}
        self._lock = threading.Lock()

    def context_for(self, spec: LeafSpec) -> ssl.SSLContext:
        now = self.authority.now()
        got = self._contexts.get(spec.key)
        if got is not None and not self.authority.renewal_due(got[1], now):
            return got[0]
        with self._lock:
            files = self.authority.leaf(spec)
            ctx = _leaf_context(files)
            self._contexts[spec.key] = (ctx, files.not_after)
        return ctx

    def sni(self, sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> None:
        """``SSLContext.sni_callback``: returning None lets the handshake go on."""
        spec = leaf_for(name)
        try:
            ctx = self.context_for(spec)
        except Exception:  # an exception here aborts the handshake with no hint: log why
            log.exception("TLS leaf for %r could not be issued; serving the default", name)
            return None
        # Even the default goes through here: a long-lived daemon renews it too.
        sock.context = ctx
        return None


def server_context(state_dir: Path, *, now: Clock = utcnow) -> ssl.SSLContext:
    """A TLS server context for the gateway (see the module docstring); creates the CA in
    ``state_dir`` on first use. ``now`` is the clock the CA uses (tests control it)."""
    leaves = LeafContexts(Authority(state_dir, now))
    default = leaves.authority.leaf(DEFAULT_LEAF)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _configure(ctx)
    ctx.load_cert_chain(default.cert, default.key)
    ctx.sni_callback = leaves.sni
    return ctx
