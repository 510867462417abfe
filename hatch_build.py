"""The mypyc build of the gateway's hot path (issue 9; docs/design-notes.md "Compiling the hot
path"): on by default for wheels, with a pure-Python fallback.

``pip install .`` (and ``pip wheel .``, ``python -m build``) compiles ``HOT`` with mypyc and
puts the extension modules beside the ``.py`` files in the wheel, which makes it a CPython-
and platform-specific wheel; Python imports an extension module before a source file of the
same name. When that build fails (no C compiler, no Python headers) the wheel is the pure one
and a warning says why: an install never fails for it. ``HOMEPORT_COMPILE=pure`` asks for the
pure wheel. Editable installs stay pure, so an edited ``.py`` is never shadowed by a stale
extension. ``homeport status`` says which one runs (``build``).

Why by default: the compiled proxy serves 15-30% more requests a second than the pure one
and its p99 is 5-15% lower, measured on ``homeport up`` (bench/README.md, "Seventh session").
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

#: The modules every proxied request runs through (bench/README.md, issue 9 profile). ``h2``
#: because its ``H2Stream`` subclasses ``core.ExchangeCore``: an interpreted class cannot
#: subclass a compiled one.
HOT = ("proxy", "core", "http1", "upstream", "routing", "guard", "h2")
#: The name of mypyc's shared runtime library for the group (``homeport_hot__mypyc``).
GROUP = "homeport_hot"

SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify

setup(
    name="homeport-hot",
    ext_modules=mypycify(sys.argv[1:], group_name={group!r}, opt_level="3"),
    script_args=["build_ext", "--inplace"],
)
"""


def wanted() -> bool:
    """HOMEPORT_COMPILE unset or ``mypyc`` compiles, ``pure`` does not; anything else is a
    mistake worth stopping the build for."""
    choice = os.environ.get("HOMEPORT_COMPILE", "").strip().lower()
    if choice not in ("", "mypyc", "pure"):
        raise ValueError(f"HOMEPORT_COMPILE={choice!r}: use mypyc (the default) or pure")
    return choice != "pure"


class CompileHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        if not wanted():
            return []
        # mypyc type-checks what it compiles: the runtime dependencies give it the same types
        # mypy --strict sees (without them h2's objects would be Any).
        return ["mypy>=1.10", "setuptools", "types-psutil", *self.metadata.core.dependencies]

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable" or not wanted():
            return
        try:
            built = self._compile()
        except (OSError, subprocess.CalledProcessError) as exc:
            output = (getattr(exc, "stdout", None) or "") + (getattr(exc, "stderr", None) or "")
            detail = output.strip() or str(exc)
            warnings.warn(
                f"homeport: the mypyc build failed, installing pure Python: {detail[-2000:]}",
                stacklevel=1,
            )
            return
        for rel, path in built.items():
            build_data["force_include"][str(path)] = rel
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def _compile(self) -> dict[str, Path]:
        """Compile ``HOT`` in a scratch copy of ``src`` and return the extension modules by
        their path in the wheel."""
        out = Path(tempfile.mkdtemp(prefix="homeport-mypyc-"))
        shutil.copytree(Path(self.root) / "src" / "homeport", out / "homeport")
        (out / "setup.py").write_text(SETUP.format(group=GROUP))
        shutil.copy(Path(self.root) / "pyproject.toml", out / "pyproject.toml")  # mypy config
        sources = [f"homeport/gateway/{m}.py" for m in HOT]
        subprocess.run(
            [sys.executable, "setup.py", *sources],
            cwd=out,
            check=True,
            capture_output=True,
            text=True,
        )
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        built = {f"{GROUP}__mypyc{suffix}": out / f"{GROUP}__mypyc{suffix}"}
        for m in HOT:
            built[f"homeport/gateway/{m}{suffix}"] = out / "homeport" / "gateway" / f"{m}{suffix}"
        missing = [str(p) for p in built.values() if not p.exists()]
        if missing:
            raise OSError(f"mypyc did not produce {', '.join(missing)}")
        return built
