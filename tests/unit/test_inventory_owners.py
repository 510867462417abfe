"""Why a socket has no owner: the hint a user gets instead of a blank."""

from __future__ import annotations

from homeport.inventory import _facade, procfs
from homeport.model import Socket


def _sock(state: str = "LISTEN", uid: int = 1000, inode: int = 42) -> Socket:
    return Socket("tcp", 4, "127.0.0.1", 80, "0.0.0.0", 0, state, inode, uid)


def test_exited_mid_walk() -> None:
    status, hint = _facade._why_no_owner(_sock(), True, set(), procfs.ProcReader())
    assert status == "gone"
    assert "exited" in (hint or "")


def test_time_wait_has_no_owner_by_nature() -> None:
    status, _ = _facade._why_no_owner(_sock("TIME-WAIT"), False, set(), procfs.ProcReader())
    assert status == "none"


def test_other_users_socket_when_not_root(monkeypatch) -> None:
    monkeypatch.setattr(_facade.os, "geteuid", lambda: 1001)
    status, hint = _facade._why_no_owner(_sock(uid=0), False, {1}, procfs.ProcReader())
    assert status == "permission-denied"
    assert hint == "a socket of user root: run as root (sudo) to see its owner"


def test_root_sees_everything_so_missing_owner_means_elsewhere(monkeypatch) -> None:
    monkeypatch.setattr(_facade.os, "geteuid", lambda: 0)
    status, hint = _facade._why_no_owner(_sock(uid=0), False, set(), procfs.ProcReader())
    assert status == "none"
    assert "namespace" in (hint or "")


def test_root_denied_by_ptrace_names_the_suspects(monkeypatch) -> None:
    # Even root may be refused the fd links of some processes (PID 1 of a sandbox here).
    monkeypatch.setattr(_facade.os, "geteuid", lambda: 0)
    me = _facade.os.getpid()
    status, hint = _facade._why_no_owner(_sock(uid=0), False, {me}, procfs.ProcReader())
    assert status == "permission-denied"
    assert f"(pid {me})" in (hint or "")
    assert "even as root" in (hint or "")
