"""The dependency graph of a stack (pure): start levels, closures, stop order, cycles."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


class Cycle(ValueError):
    """``path`` is the cycle found, first name repeated at the end (``a -> b -> a``)."""

    def __init__(self, path: Sequence[str]) -> None:
        super().__init__(" -> ".join(path))
        self.path = tuple(path)


def levels(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Names in start order, grouped: every name's dependencies sit in earlier groups, and the
    names of one group may start in parallel. Raises ``Cycle``; names keep file order."""
    find_cycle(deps)
    depth: dict[str, int] = {}

    def walk(name: str) -> int:
        if name not in depth:
            depth[name] = 1 + max((walk(d) for d in deps.get(name, ())), default=-1)
        return depth[name]

    for name in deps:
        walk(name)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in deps:
        out[depth[name]].append(name)
    return out


def find_cycle(deps: Mapping[str, Sequence[str]]) -> None:
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for d in deps.get(name, ()):
            if state.get(d) == 1:
                raise Cycle([*path[path.index(d) :], d])
            if d not in state:
                visit(d)
        path.pop()
        state[name] = 2

    for name in deps:
        if name not in state:
            visit(name)


def closure(deps: Mapping[str, Sequence[str]], names: Iterable[str]) -> set[str]:
    """``names`` and everything they depend on, transitively."""
    out: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in out:
            out.add(name)
            todo.extend(deps.get(name, ()))
    return out


def dependents(deps: Mapping[str, Sequence[str]], names: Iterable[str]) -> set[str]:
    """``names`` and everything that depends on them, transitively (what a stop reaches)."""
    users: dict[str, list[str]] = {}
    for name, ds in deps.items():
        for d in ds:
            users.setdefault(d, []).append(name)
    return closure(users, names)
