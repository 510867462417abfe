"""Pure: the doctor's checks of the local HTTPS CA, over ``TlsFacts``.

tls.ca       the CA exists and is usable, its key is private (0600), the root is not near
             its end (10 years; warn with less than ``WARN_LEFT`` left)
tls.leaves   cached leaves: expired or close to it (they are renewed at the next
             connection to their name, so this is a warning, never a failure)
tls.trust    each store, as `homeport trust --status` checks it (by verifying a leaf)
"""

from __future__ import annotations

import datetime as dt

from homeport.doctor.records import Check, DoctorFacts

WARN_LEFT = dt.timedelta(days=10)


def _left(until: str, now: str) -> dt.timedelta:
    return dt.datetime.fromisoformat(until) - dt.datetime.fromisoformat(now)


def _days(delta: dt.timedelta) -> str:
    return f"{delta.days} day(s)" if delta.days >= 0 else f"expired {-delta.days} day(s) ago"


def check_ca(f: DoctorFacts) -> Check:
    t, tls = "local HTTPS CA", f.tls
    if tls.error:
        return Check(
            "tls.ca",
            t,
            "fail",
            f"the local CA cannot be used: {tls.error}",
            fix=f"move {tls.ca_cert.rsplit('/', 1)[0]} away, then `homeport trust` makes a new one",
        )
    if not tls.exists:
        return Check(
            "tls.ca", t, "ok", "no local CA yet: it is made on first HTTPS use or `homeport trust`"
        )
    left = _left(tls.ca_not_after, tls.now)
    detail = (f"{tls.ca_cert}, valid until {tls.ca_not_after[:10]}",)
    if tls.key_mode is not None and tls.key_mode & 0o077:
        return Check(
            "tls.ca",
            t,
            "fail",
            f"the CA key was readable by others (mode {tls.key_mode:04o}; now narrowed to 0600)",
            detail,
            fix="a key others could read may have been copied: make a new CA with"
            " `homeport trust --uninstall`, moving the tls dir away, then `homeport trust`",
        )
    if left < WARN_LEFT:
        return Check(
            "tls.ca",
            t,
            "fail" if left.total_seconds() <= 0 else "warn",
            f"the local CA root: {_days(left)} left"
            if left.total_seconds() > 0
            else f"the local CA root {_days(left)}",
            detail,
            fix="homeport trust --uninstall; move the tls dir away; homeport trust",
        )
    return Check("tls.ca", t, "ok", f"local CA valid for {_days(left)}", detail)


def check_leaves(f: DoctorFacts) -> Check:
    t, tls = "HTTPS leaf certificates", f.tls
    if not tls.exists or tls.error:
        return Check("tls.leaves", t, "ok", "no cached leaf certificates yet")
    near = [(k, _left(until, tls.now)) for k, until in tls.leaves]
    near = [(k, left) for k, left in near if left < WARN_LEFT]
    if near:
        return Check(
            "tls.leaves",
            t,
            "warn",
            f"{len(near)} of {len(tls.leaves)} cached leaf certificate(s) expire within"
            f" {WARN_LEFT.days} days",
            tuple(f"{k}: {_days(left)}" for k, left in near[:10]),
            fix="nothing to do while the gateway runs: a leaf is issued again at the next"
            " connection to its name",
        )
    if not tls.leaves:
        return Check("tls.leaves", t, "ok", "no cached leaf certificates yet")
    return Check(
        "tls.leaves", t, "ok", f"{len(tls.leaves)} cached leaf certificate(s), none near expiry"
    )


def check_trust(f: DoctorFacts) -> Check:
    t, tls = "where the local CA is trusted", f.tls
    if not tls.exists or tls.error:
        return Check("tls.trust", t, "ok", "no local CA yet: nothing to trust")
    yes = [s.id for s in tls.stores if s.trusted]
    no = [s for s in tls.stores if not s.trusted]
    words = {True: "trusts it", False: "does not trust it", None: "not checked here"}
    detail = tuple(f"{s.id}: {words[s.trusted]} ({s.detail})" for s in tls.stores)
    if not no:
        return Check("tls.trust", t, "ok", f"trusted in every store: {', '.join(yes)}", detail)
    return Check(
        "tls.trust",
        t,
        "warn",
        f"not trusted in {', '.join(s.id for s in no)}"
        + (f"; trusted in {', '.join(yes)}" if yes else ""),
        detail,
        fix=" ; ".join(dict.fromkeys(tls.commands)) or "homeport trust",
    )


CHECKS = (check_ca, check_leaves, check_trust)
