"""The gateway: a local HTTP/1.1 proxy that gives services ``NAME.localhost`` names.

Data plane (this package, no daemon state):

- ``config``   ``ProxyConfig``, the one place options are defined.
- ``http1``    pure framing: request-head validation, hop-by-hop rules, heads sent on.
- ``routing``  pure: Host -> route / control API / 404 / refused (DNS-rebinding guard).
- ``guard``    pure: per-route token and basic auth, the same-origin rule.
- ``pages``    pure: the 404/502/504/508 pages.
- ``proxy``    one client connection (asyncio protocol on llhttp).
- ``upstream`` connections to services and their keep-alive pool.
- ``server``   ``ProxyServer``: listening sockets, route snapshots, deadlines.
- ``contract`` the records shared with the control plane (daemon, store, CLI).
"""


def build() -> str:
    """How the data path runs: ``mypyc`` when its hot modules are compiled (what ``pip
    install .`` builds where a C compiler and Python's headers are present: hatch_build.py),
    ``python`` for the pure-Python fallback and editable installs."""
    from homeport.gateway import proxy

    return "python" if proxy.__file__ is None or proxy.__file__.endswith(".py") else "mypyc"
