"""Run a command, pass its output through as it comes, and keep what explains its failure.

The edge behind ``homeport explain -- CMD ARGS``: the child's stdout and stderr are read
as they arrive (one ``selectors`` loop, no thread) and written through unchanged; the last
``TAIL`` bytes of both, interleaved in arrival order, are kept. When the child exits, its
status is returned with that tail, and ``explain_failure`` reads the facts *at once*:
the listeners seen are the ones live when the command failed, not minutes later.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from homeport.explain.diagnose import Explanation

#: How much of the command's last output is kept for the explanation.
TAIL = 64 * 1024
_CHUNK = 65536

Sink = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the command ended: its exit status (shell style: 128+N for a signal), the tail
    of its output, and when it exited (``time.monotonic``)."""

    status: int
    tail: str
    exited_at: float
    #: Ended by Ctrl-C: nothing to explain.
    interrupted: bool = False


class CannotRun(Exception):
    """The command could not be started; ``status`` is what a shell exits with (127, 126)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def run(argv: Sequence[str], out: Sink, err: Sink) -> Outcome:
    """Run ``argv``; its stdout goes to ``out`` and its stderr to ``err`` as it comes.
    Raises ``CannotRun`` when the command cannot be started."""
    try:
        child = subprocess.Popen(
            list(argv), stdin=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except FileNotFoundError as exc:
        raise CannotRun(f"command not found: {argv[0]}", 127) from exc
    except PermissionError as exc:
        raise CannotRun(f"cannot run {argv[0]}: permission denied", 126) from exc
    tail: deque[bytes] = deque()
    if child.stdout is None or child.stderr is None:  # both are PIPE above
        raise CannotRun(f"cannot read the output of {argv[0]}", 126)
    interrupted = False
    try:
        _pump(child.stdout, child.stderr, out, err, tail)
    except KeyboardInterrupt:
        # Ctrl-C reached the child too (same process group): let it end as it chooses.
        interrupted = True
    try:
        code = child.wait(timeout=10 if interrupted else None)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        child.kill()
        code = child.wait()
        interrupted = True
    exited = time.monotonic()
    child.stdout.close()
    child.stderr.close()
    status = 128 - code if code < 0 else code
    text = b"".join(tail)[-TAIL:].decode("utf-8", "replace")
    return Outcome(status, text, exited, interrupted)


def _pump(stdout: IO[bytes], stderr: IO[bytes], out: Sink, err: Sink, tail: deque[bytes]) -> None:
    """Pass both streams through as they come, keeping the last ``TAIL`` bytes of both."""
    kept = 0
    with selectors.DefaultSelector() as sel:
        sel.register(stdout, selectors.EVENT_READ, out)
        sel.register(stderr, selectors.EVENT_READ, err)
        while sel.get_map():
            for key, _ in sel.select():
                data = os.read(key.fd, _CHUNK)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                key.data(data)
                tail.append(data)
                kept += len(data)
                while kept - len(tail[0]) >= TAIL:
                    kept -= len(tail.popleft())


def explain_failure(outcome: Outcome, at: str | None = None) -> Explanation | None:
    """Explain the last error in the command's output, with facts read now (right after it
    exited); None when its output holds no error homeport recognises. ``at`` is --at.

    The narrowest window around the last failure line that a tool's own rule reads wins;
    else the narrowest that anything reads (a generic rule, the errno classifier)."""
    from homeport.errors import UsageError
    from homeport.explain.diagnose import diagnose
    from homeport.explain.facts import gather
    from homeport.explain.parse import Parsed, parse_input
    from homeport.explain.window import last_error

    read: list[Parsed] = []
    for window in last_error(_plain(outcome.tail)):
        try:
            read.append(parse_input(window, at))
        except UsageError:
            continue
    if not read:
        return None
    best = next((p for p in read if p.tool not in (None, "unknown")), read[0])
    return diagnose(best, gather(best))


def _plain(text: str) -> str:
    """Without ANSI colour sequences and carriage-return progress redraws."""
    import re

    text = re.sub(r"\x1b\[[0-9;?]{0,32}[A-Za-z]", "", text)
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))
