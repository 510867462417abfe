"""Validate the project file and print the resolved stack.

Every error names the file, the key path (and the line, for TOML syntax errors) and what is
accepted; exit status 2. With --profile, the keys the profile changed are listed.

examples:
  homeport config                     the stack from homeport.toml / [tool.homeport]
  homeport config --profile test      with [profiles.test] applied, and what it changed
  homeport config --json              {"name", "id", "root", "file", "branch", "profiles",
                                       "available_profiles", "changed": [{"key","profile"}],
                                       "levels": [[names]], "services": [{... every key,
                                       defaults filled in, "route_name"}]}

The file (keys and defaults):
  [project]
  name = "shop"                       routes become SERVICE.shop.localhost
  [services.NAME]
  cmd = "..." | args = [...]          run in the project root (cwd = "sub/dir" to change)
  port = 5432 | "auto" | false        "auto" (the default): a free leased port, as $PORT
  ready = { tcp = true } | { http = "/health", status = 200 } | { exec = "cmd" }
        | { log = "regex" }           + interval, timeout, retries, deadline
  route = false                       no SERVICE.PROJECT.localhost name
  env = { URL = "http://127.0.0.1:${db.port}/x" }   ${NAME.port|url|host}, ${env.VAR}
  env_file = ".env"                   dotenv files (values never printed)
  depends_on = ["db"] | { db = "ready", migrate = "completed" }   started|ready|completed
  kind = "task"                       runs to completion
  restart = "on-failure" | { policy = "always", backoff = 1, backoff_max = 30, max = 5 }
  stop_signal = "SIGINT"              then stop_timeout (10 s), then SIGKILL of the group
  [profiles.test]
  services.api.env = { APP_ENV = "test" }
"""

from __future__ import annotations

import argparse

from homeport.cli.env import Env

HELP = "validate the project file and show the resolved stack"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from homeport.cli.project import add_file_arguments

    add_file_arguments(parser)


def run(args: argparse.Namespace, env: Env) -> int:
    from homeport.cli.project import load_stack
    from homeport.cli.render import dump_json, paint, table

    stack = load_stack(args)
    data = stack.to_json()
    if args.json:
        dump_json(env, data)
        return 0
    env.out(f"project {paint(env, stack.id, 'bold')}  ({stack.file})")
    if stack.profiles:
        env.out(f"profiles: {', '.join(stack.profiles)}")
    rows = []
    for s in data["services"]:
        cmd = s["cmd"] if s["cmd"] is not None else " ".join(s["args"])
        deps = ", ".join(f"{d['name']}:{d['condition']}" for d in s["depends_on"]) or "-"
        rows.append([s["name"], s["kind"], str(s["port"] or "-"), s["ready"]["kind"], deps,
                     s["route_name"] or "-", cmd])  # fmt: skip
    headers = ["SERVICE", "KIND", "PORT", "READY", "DEPENDS ON", "ROUTE", "COMMAND"]
    env.out(table(env, headers, rows, shrink=6))
    env.out("start order: " + " -> ".join("[" + " ".join(lv) + "]" for lv in data["levels"]))
    for change in data["changed"]:
        env.out(f"  {change['key']}  (from profile {change['profile']})")
    return 0
