"""The local CA and its trust: HTTPS for every ``NAME.localhost`` the gateway serves.

Public API::

    server_context(state_dir) -> ssl.SSLContext   the gateway's TLS context (SNI -> leaf)
    child_env(state_dir) -> dict[str, str]        CA variables for children of `homeport run`
    ca_cert_path(state_dir) -> Path               where the root certificate (PEM) is
    Authority(state_dir, now)                     the CA itself: root(), leaf(spec)

``names`` (pure: what the CA may sign, which leaf a name gets) and ``ca`` (certificates from a
given clock) hold no I/O; ``authority`` keeps them on disk; ``stores`` installs, checks and
removes the root in the system store, the NSS databases and the children's bundle. Names load
on first use: ``child_env`` must not import ``cryptography`` (~40 ms of every `homeport run`).
"""

from __future__ import annotations

from homeport import _lazy

TYPE_CHECKING = False
if TYPE_CHECKING:
    from homeport.tls.authority import Authority, ca_cert_path
    from homeport.tls.env import child_env
    from homeport.tls.server import server_context

__all__ = ["Authority", "ca_cert_path", "child_env", "server_context"]
_EXPORTS = {
    "Authority": "homeport.tls.authority",
    "ca_cert_path": "homeport.tls.authority",
    "child_env": "homeport.tls.env",
    "server_context": "homeport.tls.server",
}


def __getattr__(name: str) -> object:
    return _lazy.load(__name__, globals(), _EXPORTS, name)
