"""Where homeport keeps its state: ``$HOMEPORT_STATE_DIR``, else ``$XDG_STATE_HOME/homeport``,
else ``~/.local/state/homeport``. Created with mode 0700 on first use.

Also the one read of the state database that commands like ``homeport ls`` make, kept here
rather than in ``homeport.store`` so that they do not import the store (logging, the gateway
contract: ~15 ms of every ``ls``)."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


def state_dir_name(create: bool = True) -> str:
    """:func:`state_dir` as a ``str``, for a caller that needs nothing else of pathlib
    (importing it costs ``homeport who`` ~3 ms of its ~55)."""
    explicit = os.environ.get("HOMEPORT_STATE_DIR")
    if explicit:
        path = explicit
    else:
        home = os.path.expanduser("~")  # what Path.home() does
        base = os.environ.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state")
        path = os.path.join(base, "homeport")
    if create:
        os.makedirs(path, mode=0o700, exist_ok=True)  # 0700 on the leaf, as Path.mkdir
    return path


def state_dir(create: bool = True) -> Path:
    from pathlib import Path

    return Path(state_dir_name(create))


DB_NAME = "homeport.db"
#: ``<state dir>/leases``: the port and address leases (``homeport.ports``).
LEASES = "leases"
#: Address lease files in it, one per pool (``ports.address.address_store``).
ADDRESS_LEASES = ("addrs-", ".leases")


def has_address_leases() -> bool:
    """Whether any address lease file exists, without importing the lease code (``ls``
    asks before it reads their names: ~8 ms of imports spared where there are none)."""
    directory = os.path.join(state_dir_name(create=False), LEASES)
    prefix, suffix = ADDRESS_LEASES
    try:
        return any(n.startswith(prefix) and n.endswith(suffix) for n in os.listdir(directory))
    except OSError:
        return False


def db_path(directory: Path | None = None) -> Path:
    return (directory or state_dir()) / DB_NAME


def read_route_targets(path: Path | None = None) -> list[tuple[str, str]]:
    """(name, target) of every route, read-only: nothing is created, migrated or locked, so
    commands like ``homeport ls`` can show route names without touching the gateway's state.
    Empty when there is no database yet or it cannot be read."""
    import sqlite3

    p = path or (state_dir(create=False) / DB_NAME)
    if not p.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=0.5)
        try:
            return [(str(n), str(t)) for n, t in con.execute("SELECT name, target FROM routes")]
        finally:
            con.close()
    except sqlite3.Error:
        return []
