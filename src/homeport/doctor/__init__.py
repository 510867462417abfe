"""Machine checks for local development: loopback, `localhost`, ports, firewall on lo.

::

    from homeport.doctor import run_checks
    report = run_checks()
    report.status, [c.to_json() for c in report.checks]

``checks`` is pure (facts -> ``Check`` records), ``gather`` reads the machine, ``firewall``
reads nft/iptables rules read-only.
"""

from __future__ import annotations

from homeport.doctor.checks import CHECKS, Check, DoctorFacts, Report, evaluate

__all__ = ["CHECKS", "Check", "DoctorFacts", "Report", "evaluate", "run_checks"]


def run_checks() -> Report:
    """Gather this machine's facts and evaluate every check."""
    from homeport.doctor.gather import gather

    return evaluate(gather())
