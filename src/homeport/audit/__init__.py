"""``homeport audit``: what is exposed beyond loopback (tested from outside, through the
firewall), what answers without authentication, and what a web page could reach.

Modules: ``catalogue`` (service fingerprints as data), ``identify`` (pure matching),
``probe`` (async loopback probes), ``mysql`` (sans-IO MySQL/MariaDB login with an empty
password), ``web`` (browser-risk checks), ``outside`` (namespace probe), ``firewall``
(rules fallback, over ``homeport.doctor.firewall``), ``findings`` (pure rules), ``report``
(text, JSON, SARIF 2.1.0), ``run`` (the ``audit()`` entry point).

Public API (re-exported from ``homeport``)::

    audit(config=None, *, listeners=None, progress=None) -> AuditReport
    AuditConfig, AuditReport, Finding
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from homeport.audit.findings import Evidence, Finding
    from homeport.audit.run import AuditConfig, AuditReport, audit

__all__ = ["AuditConfig", "AuditReport", "Evidence", "Finding", "audit"]

_EXPORTS = {
    "AuditConfig": "homeport.audit.run",
    "AuditReport": "homeport.audit.run",
    "Evidence": "homeport.audit.findings",
    "Finding": "homeport.audit.findings",
    "audit": "homeport.audit.run",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `python -m homeport.audit._netns_probe` stays a small import.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'homeport.audit' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


class _CallableModule(types.ModuleType):
    """``homeport.audit(...)`` must work even after this package was imported, when the
    import system has bound the name ``homeport.audit`` to this module (not the function)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from homeport.audit.run import audit as run_audit

        return run_audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
