"""TLS inside a protocol: an ``ssl.SSLObject`` on a pair of memory BIOs between the TCP
transport and a front-end, so the gateway decides plain or TLS from bytes it has already read.

Why not ``loop.start_tls``: it wraps a transport before any byte is read, and the first byte
of the connection (0x16, a TLS handshake record, RFC 8446 §5.1) has been read by the time we
know; neither asyncio nor uvloop can push it back. The memory-BIO object is what both event
loops use inside ``start_tls`` anyway, so the cryptography runs in OpenSSL either way.

``TLSLayer`` is the TCP transport's protocol. It drives the handshake, then asks the server
which front-end speaks the ALPN protocol the client chose (``h2`` or ``http/1.1``, RFC 7301)
and hands it a ``TLSTransport``: the front-end writes plaintext and pauses reading as on TCP.
Reading honours the pause: decrypted bytes stay in OpenSSL's buffer while the front-end is
paused, so a slow upstream bounds memory as it does on plain connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Iterable
from typing import Any, cast

log = logging.getLogger("homeport.gateway.tls")

#: Plaintext read from OpenSSL per call (its records carry at most 16 KiB, RFC 8446 §5.1).
_READ = 256 * 1024
#: The application protocol a front-end factory gets: ``h2`` or ``http/1.1``.
FrontFactory = Callable[[str], asyncio.Protocol]


class TLSTransport(asyncio.Transport):
    """What a front-end sees of a TLS connection: plaintext in, plaintext out."""

    def __init__(self, layer: TLSLayer) -> None:
        super().__init__()
        self._layer = layer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._layer.send(bytes(data))

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        # One TLS record stream for what the caller corked together.
        self._layer.send(b"".join(list_of_data))

    def close(self) -> None:
        self._layer.close()

    def abort(self) -> None:
        self._layer.abort()

    def is_closing(self) -> bool:
        return self._layer.closing

    def pause_reading(self) -> None:
        self._layer.pause_reading()

    def resume_reading(self) -> None:
        self._layer.resume_reading()

    def is_reading(self) -> bool:
        return not self._layer.app_paused

    def can_write_eof(self) -> bool:
        # close_notify ends both directions (RFC 8446 §6.1): no TCP-style half-close.
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("TLS connections cannot half-close")

    def get_write_buffer_size(self) -> int:
        return self._layer.raw.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._layer.raw.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._layer.sslobj
        if name == "cipher":
            return self._layer.sslobj.cipher()
        if name == "peercert":
            return self._layer.sslobj.getpeercert()
        return self._layer.raw.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._layer.app = cast(asyncio.Protocol, protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._layer.app  # type: ignore[return-value]


class TLSLayer(asyncio.Protocol):
    """The TCP transport's protocol for one TLS client connection."""

    app: asyncio.Protocol | None = None
    app_paused = False
    closing = False
    handshaken = False
    #: The front-end asked to stay open after the client's end of stream (h1 half-close).
    keep_open: bool | None = None
    peer_done = False

    def __init__(
        self,
        context: ssl.SSLContext,
        raw: asyncio.Transport,
        front: FrontFactory,
        loop: asyncio.AbstractEventLoop,
        conns: set[Any],
    ) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.sslobj = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.raw = raw
        self.front = front
        self.loop = loop
        self.transport = TLSTransport(self)
        #: The server's connections under the sweep: the layer sits there until its
        #: handshake ends (``deadline`` then bounds a stalled handshake like a slow head).
        self.conns = conns
        self.deadline = 0.0

    # -- asyncio.Protocol (the TCP side) -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.raw = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.incoming.write(data)
        if not self.handshaken:
            self._handshake()
        if self.handshaken and not self.app_paused:
            self._read()

    def eof_received(self) -> bool | None:
        # A FIN without close_notify: the peer is gone either way; the front-end hears of it
        # through connection_lost.
        self.incoming.write_eof()
        if self.handshaken and not self.app_paused:
            self._read()
        return self.keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.conns.discard(self)
        app, self.app = self.app, None
        if app is not None:
            app.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.app is not None:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self.app is not None:
            self.app.resume_writing()

    # -- driving -------------------------------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, ssl.CertificateError) as exc:
            # A client that does not trust us (or speaks no TLS we offer) sees the alert.
            log.debug("TLS handshake failed: %s", exc)
            self._flush()
            self.abort_after_flush()
            return
        self._flush()
        self.handshaken = True
        self.conns.discard(self)
        self.deadline = 0.0
        alpn = self.sslobj.selected_alpn_protocol() or "http/1.1"
        app = self.app = self.front(alpn)
        app.connection_made(self.transport)

    def _read(self) -> None:
        """Hand decrypted bytes to the front-end until OpenSSL has none or it pauses."""
        sslobj = self.sslobj
        while not self.app_paused and self.app is not None:
            try:
                data = sslobj.read(_READ)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                self._peer_closed()  # close_notify, or a FIN without it
                break
            except ssl.SSLError as exc:
                log.debug("TLS read failed: %s", exc)
                self.abort()
                break
            if not data:
                self._peer_closed()
                break
            self.app.data_received(data)
        self._flush()  # a read may answer (TLS 1.3 key updates, session tickets)

    def _peer_closed(self) -> None:
        app = self.app
        if app is None or self.closing or self.peer_done:
            return
        self.peer_done = True
        self.keep_open = bool(app.eof_received()) or None
        if not self.keep_open:
            self.close()

    def send(self, data: bytes) -> None:
        if self.closing or not data:
            return
        try:
            self.sslobj.write(data)
        except ssl.SSLError as exc:
            log.debug("TLS write failed: %s", exc)
            self.abort()
            return
        self._flush()

    def _flush(self) -> None:
        if self.outgoing.pending:
            self.raw.write(self.outgoing.read())

    def pause_reading(self) -> None:
        if not self.app_paused:
            self.app_paused = True
            self.raw.pause_reading()

    def resume_reading(self) -> None:
        if self.app_paused:
            self.app_paused = False
            self.raw.resume_reading()
            if self.sslobj.pending() or self.incoming.pending:
                # Bytes that arrived while paused: deliver them outside the caller's frame.
                self.loop.call_soon(self._resume_read)

    def _resume_read(self) -> None:
        if self.handshaken and not self.closing:
            self._read()

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        if self.handshaken:
            # Sends close_notify; raises while it would wait for the peer's: we do not wait.
            with contextlib.suppress(ssl.SSLError):
                self.sslobj.unwrap()
            self._flush()
        self.raw.close()

    def abort_after_flush(self) -> None:
        """Close after the bytes already queued (a handshake alert) have gone out."""
        self.closing = True
        self.raw.close()

    def abort(self) -> None:
        self.closing = True
        self.raw.abort()

    def expire(self, now: float) -> None:
        """The server's sweep: the handshake did not finish in time."""
        self.abort()
