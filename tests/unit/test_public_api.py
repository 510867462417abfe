"""The library's one public face."""

from __future__ import annotations

import importlib

import homeport


def test_all_is_sorted_and_unique() -> None:
    names = [n for n in homeport.__all__ if n != "__version__"]
    assert names == sorted(names, key=lambda n: (n[0].islower(), n))
    assert len(set(homeport.__all__)) == len(homeport.__all__)


def test_every_exported_name_resolves() -> None:
    for name in homeport.__all__:
        assert getattr(homeport, name) is not None, name


def test_exports_point_at_their_defining_modules() -> None:
    for name, module in homeport._EXPORTS.items():
        assert name in homeport.__all__, f"{name} is exported lazily but missing from __all__"
        assert hasattr(importlib.import_module(module), name)
