"""Audit what listens here: what is exposed beyond loopback, what answers without
authentication, and what a web page you visit could reach.

Per TCP listener, homeport:
  1. tests reachability from outside: as root it builds a throwaway network namespace
     joined by a veth pair (198.18.0.0/15) and connects to each port on this host's own
     non-loopback addresses from there, through the firewall's input path; the namespace
     is always removed. Without root it reads the firewall rules (nft / iptables-save)
     and says "not verified".
  2. identifies the service with read-only probes (Redis PING, Postgres startup, Memcached
     version, JDWP handshake, HTTP GETs …) sent over loopback only: a 0.0.0.0 listener is
     probed at 127.0.0.1.
  3. proves whether it answers without authentication (Redis +PONG, Postgres trust,
     MySQL/MariaDB root or anonymous login with an empty password, Jupyter /api/kernels,
     inspector /json/list …). Never a write, never a password.
  4. for HTTP: tries a foreign Host (DNS rebinding; also localhost6, a trailing dot and
     127.0.0.1.nip.io — sent as a header, never resolved), CORS with a foreign Origin,
     Private Network Access, a WebSocket upgrade from a foreign Origin, and a cross-site
     text/plain POST on JSON-RPC/MCP endpoints.

examples:
  homeport audit                           every listener
  homeport audit --port 6379               one port
  homeport audit --fail-on high            CI: exit 1 when a finding is high or critical
  homeport audit --sarif audit.sarif       also write SARIF 2.1.0 for code scanning
  homeport audit --sarif - > audit.sarif   SARIF on stdout instead of text
  homeport audit --probe-address 192.0.2.10   outside-in probe only at this address
  homeport audit --no-outside              skip the namespace probe

severities: critical, high, medium, low, info. Exit status: 0, or 1 with --fail-on when a
finding reaches the threshold; 3 when a requested outside-in probe cannot run.

--json prints {"version": 1, "started", "duration_s",
  "summary": {"listeners", "findings", "by_severity": {critical, high, medium, low, info},
              "worst"},
  "outside": {"verified", "reason", "source", "addresses"},
  "firewall": null | {"tool", "input_filter", "default_drop", "docker"},
  "notes": [str],
  "listeners": [{"proto", "address", "port", "exposure", "scope", "v6only", "owner", "pids",
                 "probed_at", "service": null | {"service", "label", "version",
                 "auth" (open | protected | unknown), "tls", "http", "server", "title",
                 "proves", "evidence" (null | {"probe", "sent", "answer", "error", "tls",
                 "outcome"}),
                 "remote_auth" (null | open | protected)},
                 "outside": {"status", "detail"}, "error"}],
  "findings": [{"rule", "severity", "title", "listener", "proto", "address", "port",
                "service", "owner", "pids", "evidence": [{"probe", "answer"}], "fix"}]}
remote_auth: for a listener beyond loopback, the same proof sent from one of this host's
own non-loopback addresses (Redis protected-mode answers loopback only);
scope is loopback | all-interfaces | all-interfaces+dual-stack | lan | vpn-tailnet | public;
outside.status is loopback | reachable | blocked | not-verified | not-covered.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from homeport.cli import render
from homeport.cli.env import Env

if TYPE_CHECKING:
    from homeport.audit.run import AuditConfig, AuditReport, Progress
    from homeport.audit.severity import Severity

HELP = "prove what is exposed, what answers without auth, what a web page could reach"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", metavar="P", help="only this port")
    p.add_argument(
        "--fail-on",
        metavar="SEVERITY",
        help="exit 1 when a finding is at or above SEVERITY (critical, high, medium, low, info)",
    )
    p.add_argument(
        "--sarif",
        metavar="FILE",
        help="write SARIF 2.1.0 to FILE ('-' for stdout, instead of text)",
    )
    p.add_argument(
        "--probe-address",
        action="append",
        default=[],
        metavar="ADDR",
        help="limit the outside-in probe to this address of this host (repeatable)",
    )
    p.add_argument("--no-outside", action="store_true", help="skip the outside-in probe")
    p.add_argument("--no-web", action="store_true", help="skip the browser-risk checks")
    p.add_argument(
        "--timeout", type=float, default=1.0, metavar="S", help="seconds per probe (default 1.0)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _config(args: argparse.Namespace) -> tuple[AuditConfig, Severity | None]:
    from homeport.addr import check_port, ip
    from homeport.audit.run import AuditConfig
    from homeport.audit.severity import parse
    from homeport.errors import UsageError

    port = check_port(args.port) if args.port is not None else None
    threshold = parse(args.fail_on) if args.fail_on else None
    for a in args.probe_address:
        parsed = ip(a)
        if parsed is None or parsed.is_loopback or parsed.is_unspecified:
            raise UsageError(
                f"--probe-address {a!r}: give one of this host's own non-loopback "
                "IP addresses (e.g. 192.0.2.10)"
            )
    if not 0.05 <= args.timeout <= 30:
        raise UsageError(f"--timeout {args.timeout}: accepted 0.05 to 30 seconds")
    if args.probe_address and args.no_outside:
        raise UsageError("--probe-address and --no-outside contradict each other")
    cfg = AuditConfig(
        port=port,
        probe_timeout=args.timeout,
        outside=not args.no_outside,
        probe_addresses=tuple(args.probe_address),
        web=not args.no_web,
    )
    return cfg, threshold


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.audit import report as rep
    from homeport.audit.run import audit
    from homeport.audit.severity import at_least
    from homeport.errors import EnvironmentProblem, NotFound

    cfg, threshold = _config(args)
    progress = _progress(env) if env.stdout_isatty and not args.json else None
    result = audit(cfg, progress=progress)
    if progress is not None:
        env.stderr.write("\r\x1b[K")
    if cfg.probe_addresses and not result.outside.verified:
        raise EnvironmentProblem(
            f"--probe-address needs the outside-in probe, which cannot "
            f"run here: {result.outside.reason}"
        )
    if cfg.port is not None and not result.listeners:
        raise NotFound(f"nothing listens on port {cfg.port}")
    _keep_for_metrics(rep.to_json(result))
    if args.sarif:
        _write_sarif(env, args.sarif, rep.to_sarif(result))
    if args.json:
        render.dump_json(env, rep.to_json(result))
    elif args.sarif != "-":
        _print_text(env, result)
    if threshold is not None and any(at_least(f.severity, threshold) for f in result.findings):
        return 1
    return 0


def _keep_for_metrics(report: dict[str, object]) -> None:
    """The daemon's /metrics shows the last audit's findings (homeport.metrics)."""
    from homeport.metrics import save_audit
    from homeport.paths import state_dir

    save_audit(report, state_dir())


def _write_sarif(env: Env, where: str, data: dict[str, object]) -> None:
    text = json.dumps(data, indent=2) + "\n"
    if where == "-":
        env.stdout.write(text)
        return
    from homeport.errors import EnvironmentProblem

    try:
        with open(where, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write SARIF to {where}: {exc.strerror}") from exc


def _progress(env: Env) -> Progress:
    def show(done: int, total: int, what: str) -> None:
        env.stderr.write(f"\r\x1b[Kaudit: {done}/{total} listeners probed ({what})")
        env.stderr.flush()

    return show


def _print_text(env: Env, result: AuditReport) -> None:
    from homeport.audit import report as rep

    env.out(render.paint(env, rep.headline(result), "bold"))
    for note in result.notes:
        env.out(render.paint(env, f"note: {note}", "dim"))
    if result.listeners:
        env.out()
        env.out(
            render.table(
                env,
                ["LISTENER", "SERVICE", "AUTH", "OUTSIDE", "OWNER"],
                rep.listener_rows(result),
                shrink=4,
            )
        )
    if result.findings:
        env.out()
        styles = {"red": "red", "yellow": "yellow", "blue": "blue", "dim": "dim"}
        for line in rep.render_findings(
            result.findings, lambda t, s: render.paint(env, t, styles.get(s, ""))
        ):
            env.out(line)
    else:
        env.out()
        env.out(render.paint(env, "no findings", "green"))
