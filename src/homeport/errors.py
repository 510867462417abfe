"""One error tree for homeport.

Every error a user can see carries an exit status, so the CLI can turn it into a
one-line message and the right status without a traceback::

    HomeportError                 (exit 1 unless a subclass says otherwise)
    ├── NotFound                  1  nothing holds the port, no such route …
    ├── NotReady                  1  a wait that timed out, a service that did not start
    ├── UsageError                2  bad input: what was wrong and what is accepted
    ├── EnvironmentProblem        3  permission, unsupported platform, missing tool
    │   └── UnsupportedPlatform   3
    └── DaemonError               3  the gateway daemon is unreachable or refused us

Foreign exceptions are mapped at the boundary with ``raise Ours(...) from exc``.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Exit statuses shared by every command (see DESIGN.md, Conventions)."""

    OK = 0
    NOT_FOUND = 1  # nothing found / not ready / findings at or above the threshold
    USAGE = 2
    ENVIRONMENT = 3
    INTERRUPTED = 130


class HomeportError(Exception):
    """Root of every error homeport raises on purpose."""

    exit_status: ExitStatus = ExitStatus.NOT_FOUND

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class NotFound(HomeportError):
    """The thing asked about does not exist (nothing listens there, no such route)."""


class NotReady(HomeportError):
    """A wait ran out of time, or a watched process went away first."""


class UsageError(HomeportError):
    """Bad input from the user: the message says what was wrong and what is accepted."""

    exit_status = ExitStatus.USAGE


class EnvironmentProblem(HomeportError):
    """The machine does not allow what was asked (permission, missing tool)."""

    exit_status = ExitStatus.ENVIRONMENT


class UnsupportedPlatform(EnvironmentProblem):
    """The feature has no backend on this operating system."""


class DaemonError(HomeportError):
    """The gateway daemon could not be reached or refused the request."""

    exit_status = ExitStatus.ENVIRONMENT
