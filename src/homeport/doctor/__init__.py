"""Machine checks for local development: loopback, `localhost`, ports, firewall on lo.

::

    from homeport.doctor import run_checks
    report = run_checks()
    report.status, [c.to_json() for c in report.checks]

``checks`` is pure (facts -> ``Check`` records), ``gather`` reads the machine, ``firewall``
reads nft/iptables rules read-only. Importing this package imports none of them, so
``homeport explain`` can use ``homeport.doctor.firewall`` without paying for the checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from homeport.doctor.records import Report

__all__ = ["CHECKS", "Check", "DoctorFacts", "Report", "evaluate", "run_checks", "run_doctor"]


def run_checks() -> Report:
    """Gather this machine's facts and evaluate every check."""
    from homeport.doctor.checks import evaluate
    from homeport.doctor.gather import gather

    return evaluate(gather())


#: The name ``homeport.__all__`` can export without clashing with this package's name.
run_doctor = run_checks


def __getattr__(name: str) -> Any:
    if name in ("CHECKS", "Check", "DoctorFacts", "Report", "evaluate"):
        from homeport.doctor import checks

        return getattr(checks, name)
    raise AttributeError(f"module 'homeport.doctor' has no attribute {name!r}")
