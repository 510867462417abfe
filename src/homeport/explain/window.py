"""Pure: the bounded text the rules see, so explaining any input is linear in its size.

A regex search can cost up to the square of the text it scans (a lazy ``\\S+?:`` on a
200,000-character token took over 30 s). Rather than trusting every pattern, the text
is bounded structurally before any rule runs:

- no line longer than ``LINE_CAP`` characters: a longer line is cut into pieces of
  ``LINE_CAP`` that overlap by ``OVERLAP`` (an error phrase shorter than the overlap is
  never split), so a regex sees at most ``LINE_CAP`` characters between newlines;
- no more than ``WINDOW`` characters in all: a longer log is cut to the window that ends a
  little after the *last* line with a failure word (the last error is the one to explain).

Finding that line is one ``rfind`` per failure word over the text, so the whole pass is
linear; every rule then runs on at most ``WINDOW`` characters.
"""

from __future__ import annotations

LINE_CAP = 1024
OVERLAP = 160
WINDOW = 32_768
#: The start of the text, always kept: a word in a blob after the error (random base64
#: holds "fail" or "enet" now and then) must not push the error itself out of the window.
HEAD = 2_048
#: How much of the window lies after the failure line (the rest is the context before it).
_AFTER = 4_096

#: Words that a failure line carries (lower case); used only to place the window in a
#: long log. Found with ``str.rfind`` from the end: C speed, linear, no regex.
SIGNALS: tuple[str, ...] = (
    "refused",
    "errno",
    "error",
    "fail",
    "unable",
    "cannot",
    "can't",
    "couldn't",
    "could not",
    "denied",
    "not permitted",
    "timed out",
    "timeout",
    "reset",
    "hang up",
    "in use",
    "unreachable",
    "no route",
    "not known",
    "not found",
    "eaddr",
    "econn",
    "etimedout",
    "enotfound",
    "eacces",
    "eperm",
    "ehost",
    "enet",
    "epipe",
    "winerror",
    "wsae",
)


def pieces(line: str) -> list[str]:
    """``line`` cut into overlapping pieces of at most ``LINE_CAP`` characters."""
    if len(line) <= LINE_CAP:
        return [line]
    step = LINE_CAP - OVERLAP
    return [line[i : i + LINE_CAP] for i in range(0, len(line) - OVERLAP, step)]


def cap_lines(text: str) -> str:
    """``text`` with every line longer than ``LINE_CAP`` cut into overlapping pieces."""
    if len(text) <= LINE_CAP:
        return text
    lines = text.split("\n")
    if all(len(line) <= LINE_CAP for line in lines):
        return text
    return "\n".join(p for line in lines for p in pieces(line))


def focus(text: str) -> str:
    """The text the rules see: lines capped, and at most ``WINDOW`` characters: the first
    ``HEAD`` characters (an error printed before a long blob: a JSON log line, a token) and
    the rest around the last line with a failure word (or the end when none has one)."""
    capped = cap_lines(text)
    if len(capped) <= WINDOW:
        return capped
    end = len(capped)
    hit = _last_signal(capped)
    if hit is not None:
        stop = capped.find("\n", min(hit + _AFTER, len(capped)))
        end = len(capped) if stop < 0 else stop
    start = max(0, end - (WINDOW - HEAD - 1))
    nl = capped.find("\n", start)
    if start > 0 and 0 <= nl < end:
        start = nl + 1  # begin on a whole line
    if start <= HEAD:
        return capped[max(0, end - WINDOW) : end]
    return capped[:HEAD] + "\n" + capped[start:end]


def _last_signal(capped: str) -> int | None:
    """Offset of the start of the last line that carries a failure word."""
    low = capped.lower()
    hit = max(low.rfind(word) for word in SIGNALS)
    return None if hit < 0 else low.rfind("\n", 0, hit) + 1


#: The last error of a command's output: its failure line, the lines before it that a
#: multi-line message starts on (a traceback's head), and a few after.
LAST_BEFORE, LAST_AFTER, LAST_LINES = 2_048, 512, 8


def last_error(text: str) -> tuple[str, ...]:
    """Windows around the last line with a failure word, narrowest first: that line (and
    what follows it), then with the ``LAST_LINES`` lines before, then ``LAST_BEFORE``
    characters before. Empty when no line has a failure word. The narrow ones keep an
    earlier, already handled error in the same output from being the one explained."""
    capped = cap_lines(text)
    hit = _last_signal(capped)
    if hit is None:
        return ()
    stop = capped.find("\n", min(len(capped), hit + LAST_AFTER))
    end = len(capped) if stop < 0 else stop
    starts = [hit]
    line = hit
    for _ in range(LAST_LINES):
        if line == 0:
            break
        line = capped.rfind("\n", 0, line - 1) + 1
    starts.append(line)
    far = max(0, hit - LAST_BEFORE)
    starts.append(capped.rfind("\n", 0, far) + 1 if far else 0)
    out: list[str] = []
    for start in starts:
        piece = capped[min(start, hit) : end]
        if piece not in out:
            out.append(piece)
    return tuple(out)
