"""A linked git worktree's branch, as a name prefix (``feature-x.web.shop.localhost``).

Two checkouts of one project then run side by side under different names. Only a *linked*
worktree (``git worktree add``) gets a prefix: its ``.git`` is a file ``gitdir: …/worktrees/X``
(gitrepository-layout(5)); the main checkout, and a submodule (``gitdir: …/modules/X``), do
not. Reads two small files; no ``git`` process.
"""

from __future__ import annotations

import re
from pathlib import Path


def parse_head(text: str) -> str | None:
    """The branch a ``HEAD`` file names (``ref: refs/heads/B``), or ``detached-SHA7``."""
    text = text.strip()
    if text.startswith("ref: refs/heads/"):
        return text.removeprefix("ref: refs/heads/")
    if re.fullmatch(r"[0-9a-f]{40,64}", text):
        return f"detached-{text[:7]}"
    return None


def as_label(branch: str) -> str | None:
    """``feature/X_1`` -> ``feature-x-1``: one DNS label."""
    text = re.sub(r"[^a-z0-9-]+", "-", branch.lower()).strip("-")[:63].strip("-")
    return text or None


def branch_prefix(folder: Path) -> str | None:
    for d in (folder, *folder.parents):
        dotgit = d / ".git"
        if dotgit.is_dir():
            return None  # the main checkout
        if dotgit.is_file():
            try:
                line = dotgit.read_text().strip()
            except OSError:
                return None
            gitdir = Path(line.removeprefix("gitdir:").strip())
            if not gitdir.is_absolute():
                gitdir = (d / gitdir).resolve()
            if gitdir.parent.name != "worktrees":
                return None  # a submodule
            try:
                branch = parse_head((gitdir / "HEAD").read_text())
            except OSError:
                return None
            return as_label(branch) if branch else None
    return None
