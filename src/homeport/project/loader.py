"""Find a project file, read it, apply profiles, validate: ``load(path) -> Stack``.

The file is ``homeport.toml`` in the folder or the nearest parent (like git finds ``.git``),
or a ``[tool.homeport]`` table in a ``pyproject.toml`` found the same way; ``homeport.toml``
wins where a folder has both. ``parse_text`` is the pure part: text in, ``Stack`` out.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from homeport.project import graph, interp
from homeport.project.errors import ProjectError
from homeport.project.finder import FILE_NAME, PYPROJECT, find
from homeport.project.schema import (
    PROJECT_KEYS,
    TOP_KEYS,
    At,
    ServiceSpec,
    check_keys,
    label,
    parse_service,
    want_table,
)
from homeport.project.stack import Stack


def load(
    path: Path | str | None = None,
    *,
    profiles: Iterable[str] = (),
) -> Stack:
    """The ``Stack`` for a project file, or a folder to search from (default: the cwd)."""
    p = Path(path) if path is not None else None
    file = p if p is not None and p.is_file() else find(p)
    if file is None:
        where = p or Path.cwd()
        raise ProjectError(
            where,
            "",
            f"no {FILE_NAME} here or in any parent folder",
            hint=f"create {FILE_NAME} with [services.NAME] tables (homeport config --help)",
        )
    file = file.resolve()
    try:
        text = file.read_text()
    except OSError as exc:
        raise ProjectError(file, "", f"cannot read: {exc.strerror}") from None
    from homeport.project.worktree import branch_prefix

    return parse_text(text, file, profiles=profiles, branch=branch_prefix(file.parent))


def parse_text(
    text: str, file: Path, *, profiles: Iterable[str] = (), branch: str | None = None
) -> Stack:
    """Pure: the file's text -> a validated ``Stack`` with ``profiles`` applied in order."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _line_of(str(exc))
        raise ProjectError(file, "", f"not valid TOML: {exc}", line=line) from None
    prefix: tuple[str, ...] = ()
    if file.name == PYPROJECT:
        data = data.get("tool", {}).get("homeport")
        prefix = ("tool", "homeport")
        if not isinstance(data, dict):
            raise ProjectError(file, "tool.homeport", "missing: no [tool.homeport] table")
    at = At(file, prefix)
    check_keys(data, TOP_KEYS, at)
    available = _profiles(data, at)
    applied = tuple(profiles)
    merged, origins = dict(data), {}
    for name in applied:
        if name not in available:
            known = ", ".join(available) or "none defined"
            raise (at / "profiles").error(f"no profile {name!r} (profiles: {known})")
        merged, changed = _merge(merged, available[name], prefix)
        origins.update(dict.fromkeys(changed, name))
    at = At(file, prefix, origins)
    return _build(merged, at, file, branch, applied, tuple(available), origins, prefix)


def _line_of(message: str) -> int | None:
    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else None


def _profiles(data: Mapping[str, Any], at: At) -> dict[str, dict[str, Any]]:
    raw = want_table(data.get("profiles", {}), at / "profiles", "[profiles.NAME]")
    out = {}
    for name, table in raw.items():
        p = at / "profiles" / name
        label(name, p)
        body = want_table(table, p, "the keys of the file it overrides, e.g. services.api.env")
        check_keys(body, {k: v for k, v in TOP_KEYS.items() if k != "profiles"}, p)
        out[name] = body
    return out


def _merge(
    base: Mapping[str, Any], over: Mapping[str, Any], prefix: tuple[str, ...]
) -> tuple[dict[str, Any], list[tuple[str, ...]]]:
    """``over`` merged into ``base``: tables merge key by key, anything else is replaced.
    Returns the merge and the key paths ``over`` set (with ``prefix``)."""
    out = dict(base)
    changed: list[tuple[str, ...]] = []
    for key, value in over.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "env":
            out[key], sub = _merge(out[key], value, path)
            changed += sub
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}  # env: variables are added or replaced one by one
            changed += [(*path, k) for k in value]
        else:
            out[key] = value
            changed.append(path)
    return out, changed


def _build(
    data: Mapping[str, Any],
    at: At,
    file: Path,
    branch: str | None,
    applied: tuple[str, ...],
    available: tuple[str, ...],
    origins: Mapping[tuple[str, ...], str],
    prefix: tuple[str, ...],
) -> Stack:
    project = want_table(data.get("project", {}), at / "project", "name")
    check_keys(project, PROJECT_KEYS, at / "project")
    name = (
        label(project["name"], at / "project" / "name")
        if "name" in project
        else _name_from_folder(file.parent.name)
    )
    raw = want_table(data.get("services", {}), at / "services", "[services.NAME]")
    if not raw:
        raise (at / "services").error("no services: add a [services.NAME] table")
    kinds = {n: (t.get("kind") if isinstance(t, dict) else None) for n, t in raw.items()}
    specs = [parse_service(n, t, at / "services" / n, kinds) for n, t in raw.items()]
    _check_graph(specs, at)
    _check_references(specs, at)
    order = [n for level in graph.levels({s.name: [d.name for d in s.depends_on] for s in specs})
             for n in level]  # fmt: skip
    by_name = {s.name: s for s in specs}
    changed = tuple((".".join(p[len(prefix) :]), origin) for p, origin in sorted(origins.items()))
    return Stack(
        name=name,
        root=file.parent,
        file=file,
        services=tuple(by_name[n] for n in order),
        branch=branch,
        profiles=applied,
        available_profiles=available,
        changed=changed,
    )


def _name_from_folder(folder: str) -> str:
    text = re.sub(r"[^a-z0-9-]+", "-", folder.lower()).strip("-")[:63].strip("-")
    return text or "app"


def _check_graph(specs: list[ServiceSpec], at: At) -> None:
    names = {s.name: s for s in specs}
    for s in specs:
        for d in s.depends_on:
            where = at / "services" / s.name / "depends_on" / d.name
            if d.name not in names:
                raise where.error(
                    f"no service named {d.name!r}", hint="services: " + ", ".join(names)
                )
            if d.name == s.name:
                raise where.error("a service cannot depend on itself")
            if d.condition == "completed" and names[d.name].kind != "task":
                raise where.error(
                    f"{d.name} is a service, which never completes",
                    hint=f'use "ready" or "started", or make {d.name} kind = "task"',
                )
    try:
        graph.find_cycle({s.name: [d.name for d in s.depends_on] for s in specs})
    except graph.Cycle as exc:
        raise (at / "services" / exc.path[0] / "depends_on").error(
            f"dependency cycle: {exc}"
        ) from None


def _check_references(specs: list[ServiceSpec], at: At) -> None:
    has_port = {s.name: s.port is not None for s in specs}
    for s in specs:
        where = at / "services" / s.name
        texts: list[tuple[At, str]] = [(where / "cwd", s.cwd)]
        if s.cmd is not None:
            texts.append((where / "cmd", s.cmd))
        texts += [(where / "args" / str(i), a) for i, a in enumerate(s.args or ())]
        texts += [(where / "env" / k, v) for k, v in s.env]
        if s.ready.command is not None:
            texts.append((where / "ready" / "exec", s.ready.command))
        for place, text in texts:
            try:
                interp.check(text, has_port)
            except interp.BadReference as exc:
                raise place.error(str(exc)) from None
