"""A fake asyncio transport for the gateway's protocol tests: records what is written."""

from __future__ import annotations

from typing import Any

GW_PORT = 62893


class FakeTransport:
    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        self.out = bytearray()
        self.closed = False
        self.paused = False
        self.extra = {"peername": peer, "sockname": ("127.0.0.1", GW_PORT)}

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.out += data

    def writelines(self, items: list[bytes]) -> None:
        for item in items:
            self.write(item)

    def close(self) -> None:
        self.closed = True

    abort = close

    eof = False  # write_eof() was called: our side of the stream has ended

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        assert not self.closed, "write_eof after close"
        self.eof = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def take(self) -> bytes:
        data, self.out = bytes(self.out), bytearray()
        return data
