"""The doctor's HTTPS checks over recorded facts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from homeport.doctor.checks import evaluate
from homeport.doctor.records import DoctorFacts, TlsFacts, TlsStore

NOW = "2026-12-01T00:00:00+00:00"
HEALTHY = TlsFacts(
    ca_cert="/s/tls/ca.pem",
    exists=True,
    key_mode=0o600,
    now=NOW,
    ca_not_after="2036-11-28T00:00:00+00:00",
    leaves=(("api.localhost", "2026-12-20T00:00:00+00:00"),),
    stores=(TlsStore("system", True, "ok"), TlsStore("nss:chromium", True, "ok")),
)


def statuses(tls: TlsFacts) -> dict[str, str]:
    report = evaluate(replace(DoctorFacts(), tls=tls))
    return {c.id: c.status for c in report.checks if c.id.startswith("tls.")}


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        (TlsFacts(), {"tls.ca": "ok", "tls.leaves": "ok", "tls.trust": "ok"}),
        (HEALTHY, {"tls.ca": "ok", "tls.leaves": "ok", "tls.trust": "ok"}),
        (replace(HEALTHY, key_mode=0o644), {"tls.ca": "fail"}),
        (replace(HEALTHY, ca_not_after="2026-12-09T00:00:00+00:00"), {"tls.ca": "warn"}),
        (replace(HEALTHY, ca_not_after="2026-11-30T00:00:00+00:00"), {"tls.ca": "fail"}),
        (
            replace(HEALTHY, leaves=(("a.localhost", "2026-12-05T00:00:00+00:00"),)),
            {"tls.leaves": "warn"},
        ),
        (
            replace(
                HEALTHY,
                stores=(TlsStore("system", False, "no"), TlsStore("nss:chromium", True)),
                commands=("sudo cp a b && sudo update-ca-certificates",),
            ),
            {"tls.trust": "warn"},
        ),
        (replace(HEALTHY, error="bad key"), {"tls.ca": "fail"}),
    ],
)
def test_tls_statuses(tls: TlsFacts, expected: dict[str, str]) -> None:
    want = {"tls.ca": "ok", "tls.leaves": "ok", "tls.trust": "ok", **expected}
    assert statuses(tls) == want


def test_untrusted_store_names_the_command() -> None:
    tls = replace(
        HEALTHY,
        stores=(TlsStore("system", False, "no"), TlsStore("nss:chromium", True)),
        commands=("sudo cp a b && sudo update-ca-certificates",),
    )
    [c] = [c for c in evaluate(replace(DoctorFacts(), tls=tls)).checks if c.id == "tls.trust"]
    assert c.summary == "not trusted in system; trusted in nss:chromium"
    assert c.fix == "sudo cp a b && sudo update-ca-certificates"
