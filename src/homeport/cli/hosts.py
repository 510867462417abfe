"""Names for every client: keep homeport's block in /etc/hosts in step with routes and addresses.

Browsers resolve *.localhost to loopback by themselves; psql, redis-cli, ssh, Java, Go …
ask the system resolver, which reads /etc/hosts. ``sync`` writes one line per name between
two marker lines, ``ADDRESS  NAME.localhost``:
  * a name with its own address (run --own-address, route add --tcp, homeport addr NAME)
    maps to that 127.0.x.y, so ``psql -h db.localhost`` reaches it directly;
  * any other route name maps to 127.0.0.1, where the gateway listens.
Nothing outside the block is touched, byte for byte; ``clean`` removes the block and gives
back exactly the file sync started from.

The write is atomic (a temporary file in the same directory, renamed over the original, its
mode and owner kept); where /etc/hosts is a bind mount (containers), rename cannot replace it
(EBUSY) and the file is written in place under a lock instead — the output says which. The
first change keeps a copy of the original as /etc/hosts.homeport.bak.

Writing /etc/hosts needs root: without it, homeport prints the one line to run
(``sudo homeport hosts sync``) and the change it would make. Under sudo, the routes and
leases read are those of the user who ran sudo. HOMEPORT_HOSTS_FILE names another file.

examples:
  homeport hosts sync --dry-run       the diff, nothing written
  sudo homeport hosts sync            write the block
  sudo homeport hosts clean           remove it

exit status: 0 done (or nothing to do), 2 bad usage, 3 no permission (the sudo line is
printed).

--json: {"path", "entries": [{"name", "address"}], "changed": BOOL, "method":
"rename"|"in-place"|"unchanged"|"dry-run", "backup": PATH|null, "diff": TEXT}
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from homeport.cli.env import Env

if TYPE_CHECKING:
    from homeport.hosts.block import Entry

HELP = "map route and address names in /etc/hosts, for every client (sync, clean)"

SUDO_LINE = "sudo homeport hosts sync"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="hosts_cmd", metavar="sync|clean")
    sync = sub.add_parser("sync", help="write the block: one line per route and address name")
    clean = sub.add_parser("clean", help="remove the block, restoring the file")
    for p in (sync, clean):
        p.add_argument("--dry-run", action="store_true", help="show the diff, write nothing")
        p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.errors import UsageError
    from homeport.hosts.block import apply_block, remove_block

    cmd = args.hosts_cmd
    if cmd not in ("sync", "clean"):
        raise UsageError("use: homeport hosts sync [--dry-run] | homeport hosts clean")
    if cmd == "clean":
        return _change(env, args, remove_block, [], "sudo homeport hosts clean")
    from homeport.hosts.names import gather

    _state_of_sudo_user()
    entries = gather()
    return _change(env, args, lambda text: apply_block(text, entries), entries, SUDO_LINE)


def _change(
    env: Env,
    args: argparse.Namespace,
    change: Callable[[str], str],
    entries: Sequence[Entry],
    sudo_line: str,
) -> int:
    from homeport.cli.render import dump_json
    from homeport.hosts.block import diff
    from homeport.hosts.write import NoPermission, hosts_path, read_text, update

    path = hosts_path()
    try:
        old = read_text(path)
    except OSError as exc:
        from homeport.errors import EnvironmentProblem

        raise EnvironmentProblem(f"cannot read {path}: {exc.strerror}") from None
    new = change(old)
    shown = [_entry_json(e) for e in entries]
    result: dict[str, object] = {"path": str(path), "entries": shown, "backup": None}
    change_text = diff(old, new, str(path))
    if args.dry_run:
        result.update(changed=new != old, method="dry-run", diff=change_text)
        dump_json(env, result) if args.json else _show_plan(env, change_text, path)
        return 0
    try:
        written = update(path, change)
    except NoPermission:
        if args.json:
            result.update(changed=False, method="no-permission", diff=change_text, run=sudo_line)
            dump_json(env, result)
        else:
            env.err(f"homeport: no permission to write {path}; run:")
            env.err(f"  {sudo_line}")
            _show_plan(env, change_text, path, to_err=True)
        return 3
    result.update(written.to_json(), diff=change_text, entries=shown)
    if args.json:
        dump_json(env, result)
        return 0
    for e in entries:
        env.out(e.line())
    env.out(_said(written.method, str(path), written.backup))
    return 0


def _entry_json(e: Entry) -> dict[str, str]:
    return {"name": e.name, "address": e.address}


def _show_plan(env: Env, change_text: str, path: object, to_err: bool = False) -> None:
    say = env.err if to_err else env.out
    if not change_text:
        say(f"{path} is already current: nothing to change")
        return
    say(f"it would change {path}:")
    for line in change_text.splitlines():
        say(line)


def _said(method: str, path: str, backup: object) -> str:
    if method == "unchanged":
        return f"{path} is already current"
    how = (
        "atomically (temporary file renamed over it)"
        if method == "rename"
        else "in place under a lock (it is a bind mount: rename cannot replace it)"
    )
    kept = f"; the original is kept as {backup}" if backup else ""
    return f"wrote {path} {how}{kept}"


def _state_of_sudo_user() -> None:
    """Under ``sudo``, read the invoking user's routes and leases, not root's (sudo sets
    HOME to root's, sudoers(5) ``always_set_home``/``env_reset``)."""
    user = os.environ.get("SUDO_USER")
    explicit = os.environ.get("HOMEPORT_STATE_DIR") or os.environ.get("XDG_STATE_HOME")
    if os.geteuid() != 0 or not user or explicit:
        return
    import pwd

    try:
        home = pwd.getpwnam(user).pw_dir
    except KeyError:
        return
    os.environ["HOMEPORT_STATE_DIR"] = os.path.join(home, ".local", "state", "homeport")
