"""Pure: homeport's managed block in a hosts file — render, replace, remove, diff.

The block is every line from :data:`BEGIN` to :data:`END` inclusive; nothing outside it is
ever changed, byte for byte (line endings and a missing final newline included). Inside,
one line per name: ``ADDRESS  NAME`` (hosts(5): an address, then names, separated by
blanks), sorted by name so that a sync of the same names writes the same bytes.

When the file does not end with a newline, appending the block needs one; the begin
marker then says so (:data:`ADDED_NEWLINE`) and :func:`remove_block` takes it out again,
so ``clean`` gives back exactly the text ``sync`` started from.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

BEGIN = "# BEGIN homeport managed block (homeport hosts sync; edits here are replaced)"
END = "# END homeport managed block"
#: Appended to BEGIN when the block's own newline was added after the file's last line.
ADDED_NEWLINE = " [newline added]"
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


@dataclass(frozen=True, slots=True, order=True)
class Entry:
    """One name in the block and the address it resolves to."""

    name: str
    address: str

    def line(self) -> str:
        return f"{self.address}  {self.name}"


def entry(name: str, address: str) -> Entry:
    """A checked entry: a host name (RFC 1123 labels) and an IP address; ValueError if not."""
    n = name.strip().lower().rstrip(".")
    if not _NAME.match(n) or len(n) > 253:
        raise ValueError(f"not a host name: {name!r}")
    return Entry(n, str(ipaddress.ip_address(address.strip().strip("[]"))))


def render_block(entries: Iterable[Entry], newline: str = "\n", added_newline: bool = False) -> str:
    """The block's text, markers included, each line ending with ``newline``. One line
    per name: when a name comes twice, the last address given wins."""
    by_name = {e.name: e for e in entries}
    lines = [BEGIN + (ADDED_NEWLINE if added_newline else "")]
    lines += [by_name[n].line() for n in sorted(by_name)]
    lines.append(END)
    return "".join(line + newline for line in lines)


@dataclass(frozen=True, slots=True)
class Split:
    """A hosts text cut around the block: ``before`` + block + ``after`` == the text."""

    before: str
    block: str | None
    after: str

    @property
    def added_newline(self) -> bool:
        return self.block is not None and self.block.split("\n", 1)[0].rstrip("\r").endswith(
            ADDED_NEWLINE
        )


def split(text: str) -> Split:
    """Find the first block (a BEGIN line up to its END line). A BEGIN without an END is
    treated as no block: the file was edited by hand, and guessing its end could eat
    lines that are not ours."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, x in enumerate(lines) if x.rstrip("\r\n").startswith(BEGIN)), None)
    if start is None:
        return Split(text, None, "")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].rstrip("\r\n") == END), None)
    if end is None:
        return Split(text, None, "")
    return Split("".join(lines[:start]), "".join(lines[start : end + 1]), "".join(lines[end + 1 :]))


def _newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def apply_block(text: str, entries: Iterable[Entry]) -> str:
    """``text`` with the block holding exactly ``entries`` (added at the end if absent)."""
    nl = _newline_of(text)
    parts = split(text)
    if parts.block is not None:
        block = render_block(entries, nl, parts.added_newline)
        if not parts.block.endswith(("\n", "\r")):  # END was the file's last line
            block = block[: -len(nl)]
        return parts.before + block + parts.after
    added = bool(text) and not text.endswith("\n")
    return text + (nl if added else "") + render_block(entries, nl, added)


def remove_block(text: str) -> str:
    """``text`` without the block (and without the newline the block added, if it did)."""
    parts = split(text)
    if parts.block is None:
        return text
    before = parts.before
    if parts.added_newline and not parts.after:
        before = before[:-2] if before.endswith("\r\n") else before[:-1]
    return before + parts.after


def block_entries(text: str) -> list[Entry]:
    """The entries now inside the block (lines that do not parse are skipped)."""
    parts = split(text)
    if parts.block is None:
        return []
    out = []
    for line in parts.block.splitlines()[1:-1]:
        fields = line.split("#", 1)[0].split()
        for name in fields[1:]:
            try:
                out.append(entry(name, fields[0]))
            except ValueError:
                continue
    return out


def is_current(text: str, entries: Iterable[Entry]) -> bool:
    """Whether the file already holds exactly this block."""
    return apply_block(text, entries) == text and split(text).block is not None


def diff(old: str, new: str, path: str) -> str:
    """A unified diff of the change, as ``--dry-run`` shows it ('' when none)."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} (now)",
            tofile=f"{path} (after sync)",
        )
    )


def nss_hosts_order(nsswitch: str) -> list[str]:
    """The sources of the ``hosts:`` line of nsswitch.conf(5), in order, without
    ``[STATUS=action]`` items; [] when there is no such line."""
    for line in nsswitch.splitlines():
        fields = line.split("#", 1)[0].split()
        if fields and fields[0] == "hosts:":
            return [f for f in fields[1:] if not f.startswith("[")]
    return []


def nss_files_first(nsswitch: str) -> tuple[bool, str]:
    """Whether ``files`` (/etc/hosts) is asked before ``myhostname``: nss-myhostname
    answers every ``*.localhost`` name itself with 127.0.0.1/::1 (nss-myhostname(8)), so
    consulted first it would hide a block's own addresses. (ok, a sentence why)."""
    order = nss_hosts_order(nsswitch)
    if not order:
        return True, "no hosts: line in nsswitch.conf (glibc then reads /etc/hosts first)"
    if "files" not in order:
        return False, f"nsswitch.conf hosts: {' '.join(order)} never reads /etc/hosts"
    if "myhostname" in order and order.index("myhostname") < order.index("files"):
        return False, (
            f"nsswitch.conf hosts: {' '.join(order)} asks myhostname before files, which"
            " answers *.localhost with 127.0.0.1 and hides the block's addresses"
        )
    return True, f"nsswitch.conf hosts: {' '.join(order)} reads /etc/hosts first"
