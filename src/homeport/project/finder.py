"""Find the project file: ``homeport.toml`` in the folder or the nearest parent (like git
finds ``.git``), or a ``pyproject.toml`` with a ``[tool.homeport]`` table; ``homeport.toml``
wins where a folder has both. Kept apart from the loader so that finding costs no import of
the schema (``homeport up`` with a running daemon lets the daemon parse the file).
"""

from __future__ import annotations

from pathlib import Path

FILE_NAME = "homeport.toml"
PYPROJECT = "pyproject.toml"


def find(start: Path | None = None) -> Path | None:
    """The project file for ``start`` (default: the cwd), walking up; None when there is none."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / FILE_NAME
        if candidate.is_file():
            return candidate
        py = folder / PYPROJECT
        if py.is_file() and _has_tool_table(py):
            return py
    return None


def _has_tool_table(path: Path) -> bool:
    try:
        text = path.read_text()
    except OSError:
        return False
    if "homeport" not in text:  # most pyproject files: no parse needed
        return False
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return True  # let load() report the syntax error with its line
    return isinstance(data.get("tool", {}).get("homeport"), dict)
