"""Trust homeport's local CA where this user's programs look, and say where it is trusted.

The gateway serves https://NAME.localhost with leaves from a local CA (made on first use in
the state dir, name-constrained to localhost and loopback addresses: its key cannot sign for
any real site). `homeport trust` installs its root in:

  system               the OS store: Debian/Ubuntu /usr/local/share/ca-certificates +
                       update-ca-certificates, Fedora/Arch `trust anchor` (needs root;
                       without it the other stores are done and the command is printed);
                       macOS and Windows: the command to run is printed
  nss:chromium         ~/.pki/nssdb, read by Chromium and Chrome on Linux (made when absent)
  nss:firefox:PROFILE  each Firefox profile (plain, snap, flatpak)
  env                  a bundle (system roots + ours) that `homeport run` hands its children:
                       NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE

Each store is then checked by verifying a leaf against it (openssl verify, vfychain), not by
looking for a file. NSS databases need certutil (Debian: libnss3-tools). Not done here:
Java's own store (`keytool -importcert -cacerts -alias homeport -file CA_CERT`).

examples:
  homeport trust                  install everywhere this user can
  homeport trust --status         where the CA is trusted, and where not
  homeport trust --status --json | jq -r .ca_cert
  homeport trust --uninstall      remove it from every store (the CA itself stays)

Store locations can be overridden (tests use these): HOME (NSS databases),
HOMEPORT_SYSTEM_CA_DIR (the anchor dir), HOMEPORT_SYSTEM_CA_UPDATE (the command that
rebuilds the bundle), HOMEPORT_SYSTEM_CA_BUNDLE (the bundle programs read).

exit status: 0 when every store is as asked (trusts the CA; with --uninstall: does not),
1 when some store is not (the command that finishes it is printed), 3 when the CA is unusable.

--json prints {"action": "install"|"status"|"uninstall", "ca_cert": absolute path (PEM),
  "ca_exists": bool, "ca_fingerprint_sha256": hex|null, "ca_not_after": ISO 8601|null,
  "complete": bool, "commands": [str],
  "stores": [{"id", "kind": "system"|"nss"|"env", "title", "location",
              "trusted": true|false|null (null: could not be checked here), "detail",
              "changed": ""|"installed"|"created"|"removed"|..., "command": str|null}]}
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from homeport.cli import render
from homeport.cli.env import Env

if TYPE_CHECKING:
    from homeport.tls.stores import Action, TrustReport

HELP = "trust homeport's local HTTPS CA in the system, browser and child stores"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--status", action="store_true", help="check each store, change nothing")
    g.add_argument("--uninstall", action="store_true", help="remove the CA from every store")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.paths import state_dir
    from homeport.tls.stores import run as run_trust

    action: Action = "status" if args.status else "uninstall" if args.uninstall else "install"
    warning = sudo_warning(os.environ, os.geteuid() if hasattr(os, "geteuid") else -1)
    if warning:
        env.err(f"homeport: warning: {warning}")
    report = run_trust(action, state_dir())
    if args.json:
        render.dump_json(env, report.to_json())
    else:
        env.out(render_text(env, report))
    return 0 if report.complete else 1


def sudo_warning(environ: Mapping[str, str], euid: int) -> str | None:
    """Under sudo, HOME and the state dir may be root's: the CA installed would not be the
    one the user's gateway serves, and the NSS databases would be root's, not theirs."""
    user = environ.get("SUDO_USER")
    if euid != 0 or not user or user == "root":
        return None
    return (
        f"running under sudo: the CA and browser databases used are root's, not {user}'s;"
        " run `homeport trust` as yourself, and only the command it prints with sudo"
    )


_MARK = {True: ("yes", "green"), False: ("no", "red"), None: ("?", "yellow")}


def summary(report: TrustReport) -> str:
    """One line: which stores are as asked, and which are not."""
    want = report.action != "uninstall"
    done = [s.id for s in report.stores if s.trusted is want]
    left = [s.id for s in report.stores if s.trusted is not want]
    verb = "no longer trust it" if not want else "trust it"
    if not left:
        return f"all {len(done)} stores {verb}"
    return f"{len(done)} of {len(report.stores)} stores {verb}; not yet: {', '.join(left)}"


def render_text(env: Env, report: TrustReport) -> str:
    lines = [f"homeport local CA: {report.ca_cert}"]
    if report.ca_exists:
        fp, until = report.fingerprint or "", (report.not_after or "")[:10]
        lines[0] += f"  (sha256 {fp[:16]}…, valid until {until})"
    else:
        lines[0] += "  (not made yet)"
    lines.append("")
    width = max((len(s.id) for s in report.stores), default=5)
    lines.append(f"{'STORE'.ljust(width)}  TRUSTS  LOCATION")
    for s in report.stores:
        word, style = _MARK[s.trusted]
        changed = f"  [{s.changed}]" if s.changed else ""
        mark = render.paint(env, word.ljust(6), style)
        lines.append(f"{s.id.ljust(width)}  {mark}  {s.location}{changed}")
        lines.append(f"{' ' * width}          {s.title}: {s.detail}")
    lines.append("")
    lines.append(summary(report))
    commands = report.commands()
    if commands:
        lines.append("")
        lines.append("to finish, run:" if len(commands) == 1 else "to finish, run each:")
        lines.extend(f"  {c}" for c in dict.fromkeys(commands))
    return "\n".join(lines)
