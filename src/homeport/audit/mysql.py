"""Just enough of the MySQL/MariaDB client protocol to ask one question: does the server
let a user in over TCP with an EMPTY password? Pure (sans-IO): feed the server's bytes to
``Login.receive``, send back what it returns; no sockets, no clock.

Section names below are those of the MySQL source documentation, "Client/Server
Protocol" (dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html); MariaDB's
knowledge base describes the same packets under the same names.

What this module promises:

* It never sends a password. Every auth response it builds is empty: the empty
  ``auth-response`` of ``Protocol::HandshakeResponse41`` and an empty
  ``Protocol::AuthSwitchResponse``. For ``mysql_native_password`` and
  ``caching_sha2_password`` an empty response *is* the empty password (both client
  plugins send nothing when the password is empty), so no scramble is ever computed.
* It never asks for TLS (no ``CLIENT_SSL``), never names a database, and never sends a
  command other than ``COM_QUIT`` (after an OK: the login was all we wanted to know).
* Any other turn of the conversation (an auth plugin that needs a real password, a
  pre-4.1 server, a truncated or oversized packet) ends in ``unchecked`` with the reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

# "Capabilities Flags" (include/mysql_com.h). Only the ones this client reads or sets.
CLIENT_LONG_PASSWORD = 0x00000001  # MariaDB calls bit 0 CLIENT_MYSQL
CLIENT_PROTOCOL_41 = 0x00000200
CLIENT_SSL = 0x00000800
CLIENT_SECURE_CONNECTION = 0x00008000  # a.k.a. CLIENT_RESERVED2: length-prefixed auth
CLIENT_PLUGIN_AUTH = 0x00080000

#: What we ask for: 4.1 framing, a length-prefixed auth response, the plugin name.
#: Deliberately not CLIENT_SSL, CLIENT_CONNECT_WITH_DB nor CLIENT_CONNECT_ATTRS.
CLIENT_FLAGS = (
    CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
)
#: utf8_general_ci: known to every server since 4.1 (utf8mb4's 255 is not).
CHARSET_UTF8 = 33
MAX_PACKET = 1 << 24

NATIVE = "mysql_native_password"
SHA2 = "caching_sha2_password"
#: Client plugins whose answer for an empty password is the empty response.
EMPTY_OK_PLUGINS = (NATIVE, SHA2)

#: "COM_QUIT": command byte 0x01, a new command so sequence id 0.
COM_QUIT = b"\x01\x00\x00\x00\x01"

#: ERR codes that mean "these credentials do not get in" (mysqld_error.h / MariaDB's).
DENIED_CODES: dict[int, str] = {
    1044: "ER_DBACCESS_DENIED_ERROR",
    1045: "ER_ACCESS_DENIED_ERROR",
    1130: "ER_HOST_NOT_PRIVILEGED",
    1698: "ER_ACCESS_DENIED_NO_PASSWORD_ERROR",  # e.g. unix_socket accounts over TCP
    3118: "ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL)",
    4151: "ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB)",
}
#: ERR codes that mean "not without TLS": MySQL's require_secure_transport = ON. (MariaDB
#: 10.11 answers such clients with a plain 1045, measured; so does REQUIRE SSL.)
TLS_CODES: dict[int, str] = {3159: "ER_SECURE_TRANSPORT_REQUIRED"}
#: The empty password was right but has expired: the client may log in to set one.
EXPIRED_CODES: dict[int, str] = {
    1820: "ER_MUST_CHANGE_PASSWORD",
    1862: "ER_MUST_CHANGE_PASSWORD_LOGIN",
}

#: A connection-phase packet is tiny; anything larger is not the protocol we speak.
MAX_PAYLOAD = 1 << 16


class ProtocolError(ValueError):
    """The bytes are not the MySQL connection phase we expect."""


@dataclass(frozen=True, slots=True)
class Packet:
    """ "MySQL Packets": 3-byte little-endian payload length, 1-byte sequence id, payload."""

    seq: int
    payload: bytes


def frame(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload


def next_packet(buf: bytes) -> tuple[Packet | None, bytes]:
    """The first complete packet in ``buf`` and the rest; (None, buf) when incomplete."""
    if len(buf) < 4:
        return None, buf
    length = int.from_bytes(buf[:3], "little")
    if length > MAX_PAYLOAD:
        raise ProtocolError(f"a {length}-byte packet during the connection phase")
    if len(buf) < 4 + length:
        return None, buf
    return Packet(buf[3], buf[4 : 4 + length]), buf[4 + length :]


@dataclass(frozen=True, slots=True)
class Handshake:
    """ "Protocol::HandshakeV10", the server's greeting."""

    protocol: int
    server_version: str
    connection_id: int
    capabilities: int
    charset: int
    status: int
    auth_plugin: str
    scramble: bytes

    @property
    def mariadb(self) -> bool:
        return "mariadb" in self.server_version.lower()

    @property
    def version(self) -> str:
        """The real version: MariaDB 10+ prefixes ``5.5.5-`` for old replication clients."""
        v = self.server_version
        return v[6:] if v.startswith("5.5.5-") and self.mariadb else v


def _cstring(data: bytes, at: int) -> tuple[bytes, int]:
    end = data.find(b"\x00", at)
    if end < 0:
        raise ProtocolError("a string without its NUL terminator")
    return data[at:end], end + 1


def parse_handshake(payload: bytes) -> Handshake:
    """Parse ``Protocol::HandshakeV10`` (raises ProtocolError on anything else)."""
    if not payload or payload[0] != 10:
        proto = payload[0] if payload else None
        raise ProtocolError(f"protocol version {proto}, not HandshakeV10")
    version, at = _cstring(payload, 1)
    if len(payload) < at + 4 + 8 + 1 + 2:
        raise ProtocolError("greeting too short")
    conn_id = int.from_bytes(payload[at : at + 4], "little")
    part1 = payload[at + 4 : at + 12]
    # auth-plugin-data-part-1 (8 bytes) and a filler byte, then the lower capability flags
    caps = int.from_bytes(payload[at + 13 : at + 15], "little")
    charset, status, caps, part2, plugin = _handshake_tail(payload, at + 15, caps)
    return Handshake(
        10, version.decode("latin-1"), conn_id, caps, charset, status, plugin, part1 + part2
    )


def _handshake_tail(payload: bytes, at: int, caps: int) -> tuple[int, int, int, bytes, str]:
    """The part after the lower capability flags, present "if more data in the packet"
    (every server since 4.1): charset, status, upper flags, the rest of the scramble and
    the auth plugin's name."""
    if len(payload) < at + 16:
        return 0, 0, caps, b"", ""
    charset = payload[at]
    status = int.from_bytes(payload[at + 1 : at + 3], "little")
    caps |= int.from_bytes(payload[at + 3 : at + 5], "little") << 16
    data_len = payload[at + 5]
    at += 16  # + 10 reserved bytes (MariaDB keeps extended capabilities in the last 4)
    part2, plugin = b"", ""
    if caps & CLIENT_SECURE_CONNECTION:
        n = max(13, data_len - 8)  # "$len=MAX(13, length of auth-plugin-data - 8)"
        part2 = payload[at : at + n]
        part2 = part2[:-1] if part2.endswith(b"\x00") else part2  # its NUL terminator
        at += n
    if caps & CLIENT_PLUGIN_AUTH and at < len(payload):
        end = payload.find(b"\x00", at)
        plugin = payload[at : end if end >= 0 else len(payload)].decode("latin-1")
    return charset, status, caps, part2, plugin


def handshake_response(hs: Handshake, user: str) -> bytes:
    """The payload of ``Protocol::HandshakeResponse41`` for ``user`` with an empty password.

    The auth plugin named is the server's default when it is one whose empty answer we
    know (``mysql_native_password``, ``caching_sha2_password``), else
    ``mysql_native_password``: an account using another plugin makes the server send an
    ``AuthSwitchRequest``, answered (or not) in ``Login``.
    """
    caps = CLIENT_FLAGS & hs.capabilities | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION
    out = struct.pack("<IIB", caps, MAX_PACKET, CHARSET_UTF8) + bytes(23)
    out += user.encode() + b"\x00"
    out += b"\x00"  # auth-response length 0: the empty password, for both plugins
    if caps & CLIENT_PLUGIN_AUTH:
        plugin = hs.auth_plugin if hs.auth_plugin in EMPTY_OK_PLUGINS else NATIVE
        out += plugin.encode() + b"\x00"
    return out


@dataclass(frozen=True, slots=True)
class Ok:
    """``OK_Packet`` (header 0x00): authentication succeeded."""


@dataclass(frozen=True, slots=True)
class Err:
    """``ERR_Packet``: header 0xff, error code, ``#`` + SQL state (4.1), message."""

    code: int
    state: str
    message: str

    def __str__(self) -> str:
        state = f" ({self.state})" if self.state else ""
        return f"ERR {self.code}{state} {self.message}"


@dataclass(frozen=True, slots=True)
class AuthSwitch:
    """``Protocol::AuthSwitchRequest`` (0xfe): answer for another auth plugin."""

    plugin: str
    data: bytes


@dataclass(frozen=True, slots=True)
class AuthMoreData:
    """``Protocol::AuthMoreData`` (0x01): plugin-specific, e.g. caching_sha2's fast-auth."""

    data: bytes


Reply = Ok | Err | AuthSwitch | AuthMoreData


def parse_err(payload: bytes) -> Err:
    if len(payload) < 3 or payload[0] != 0xFF:
        raise ProtocolError("not an ERR_Packet")
    code = int.from_bytes(payload[1:3], "little")
    rest = payload[3:]
    state = ""
    # An ERR sent in place of the greeting has no SQL state: nothing was negotiated yet.
    if rest[:1] == b"#" and len(rest) >= 6:
        state, rest = rest[1:6].decode("latin-1"), rest[6:]
    return Err(code, state, rest.decode("utf-8", "replace"))


def parse_reply(payload: bytes) -> Reply:
    """A server packet during authentication ("Connection Phase")."""
    if not payload:
        raise ProtocolError("an empty packet during authentication")
    head = payload[0]
    if head == 0x00 and len(payload) >= 7:
        return Ok()
    if head == 0xFF:
        return parse_err(payload)
    if head == 0xFE:
        if len(payload) == 1:
            # "Old Authentication Method Switch": asks for the pre-4.1 hash.
            return AuthSwitch("mysql_old_password", b"")
        name, at = _cstring(payload, 1)
        return AuthSwitch(name.decode("latin-1"), payload[at:])
    if head == 0x01:
        return AuthMoreData(payload[1:])
    raise ProtocolError(f"unexpected packet 0x{head:02x} during authentication")


OutcomeKind = Literal["accepted", "denied", "tls-required", "unchecked"]


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: OutcomeKind
    detail: str

    def text(self) -> str:
        """``kind: detail`` — what the catalogue's signatures match."""
        return f"{self.kind}: {self.detail}"


def classify_err(err: Err, user: str) -> Outcome:
    who = _who(user)
    if err.code in DENIED_CODES:
        return Outcome("denied", f"{who} refused: {err}")
    if err.code in TLS_CODES:
        return Outcome("tls-required", f"the server requires TLS: {err}")
    if err.code in EXPIRED_CODES:
        return Outcome(
            "accepted",
            f"{who} with an empty password got in, to an expired password anyone can set: {err}",
        )
    return Outcome("unchecked", f"the server answered {err}")


def _who(user: str) -> str:
    return f"user {user!r}" if user else "the anonymous user ''"


class Login:
    """The client side of the connection phase for ``user`` with an empty password.

    ``receive(bytes) -> bytes`` returns what to send next (possibly nothing); once
    ``outcome`` is set the conversation is over: after an OK the returned bytes end in
    ``COM_QUIT``; after an ERR the server closes. ``closed()`` settles a conversation
    that the server cut short.
    """

    def __init__(self, user: str) -> None:
        self.user = user
        self.handshake: Handshake | None = None
        self.outcome: Outcome | None = None
        self._buf = b""
        self._plugin = ""
        self._switched = False

    def receive(self, data: bytes) -> bytes:
        self._buf += data
        out = b""
        while self.outcome is None:
            try:
                pkt, self._buf = next_packet(self._buf)
                if pkt is None:
                    break
                out += self._on_packet(pkt)
            except ProtocolError as exc:
                self.outcome = Outcome("unchecked", f"unexpected handshake: {exc}")
        return out

    def verdict(self) -> str | None:
        """The outcome as text once decided (what ``probe.Dialog`` asks for)."""
        return None if self.outcome is None else self.outcome.text()

    def closed(self) -> str:
        """The server closed the connection (or went quiet): settle the outcome."""
        if self.outcome is None:
            when = "before its greeting" if self.handshake is None else "during the login"
            self.outcome = Outcome("unchecked", f"the server closed the connection {when}")
        return self.outcome.text()

    def _on_packet(self, pkt: Packet) -> bytes:
        if self.handshake is None:
            return self._on_greeting(pkt)
        reply = parse_reply(pkt.payload)
        if isinstance(reply, Ok):
            how = f" ({self._plugin})" if self._plugin else ""
            self.outcome = Outcome("accepted", f"OK: {_who(self.user)} logged in over TCP{how}")
            return COM_QUIT
        if isinstance(reply, Err):
            self.outcome = classify_err(reply, self.user)
            return b""
        if isinstance(reply, AuthSwitch):
            return self._on_switch(pkt.seq, reply)
        return self._on_more_data(reply)

    def _on_greeting(self, pkt: Packet) -> bytes:
        if pkt.payload[:1] == b"\xff":  # e.g. "Host ... is not allowed to connect"
            self.handshake = None
            self.outcome = classify_err(parse_err(pkt.payload), self.user)
            return b""
        hs = self.handshake = parse_handshake(pkt.payload)
        if not hs.capabilities & CLIENT_PROTOCOL_41 or not hs.capabilities & (
            CLIENT_SECURE_CONNECTION
        ):
            raise ProtocolError("a pre-4.1 server (no CLIENT_PROTOCOL_41/SECURE_CONNECTION)")
        self._plugin = hs.auth_plugin if hs.auth_plugin in EMPTY_OK_PLUGINS else NATIVE
        return frame(pkt.seq + 1, handshake_response(hs, self.user))

    def _on_switch(self, seq: int, switch: AuthSwitch) -> bytes:
        if switch.plugin not in EMPTY_OK_PLUGINS:
            self.outcome = Outcome(
                "unchecked",
                f"the server asks {_who(self.user)} for auth plugin {switch.plugin!r}, "
                "which this check does not speak (it never sends a password)",
            )
            return b""
        if self._switched:
            raise ProtocolError(f"a second AuthSwitchRequest (to {switch.plugin})")
        self._switched = True
        self._plugin = switch.plugin
        # "Protocol::AuthSwitchResponse": the plugin's answer; empty for an empty password.
        return frame(seq + 1, b"")

    def _on_more_data(self, more: AuthMoreData) -> bytes:
        # caching_sha2_password: 0x03 = fast_auth_success (an OK follows); 0x04 = "perform
        # full authentication", which wants the password in clear over TLS or RSA-encrypted.
        if self._plugin == SHA2 and more.data == b"\x03":
            return b""
        self.outcome = Outcome(
            "unchecked",
            f"the server wants more authentication data ({more.data[:16]!r}) from "
            f"{self._plugin or 'the client'}",
        )
        return b""
