"""The gateway daemon's control plane: configuration, lifecycle, the control API and its client.

- ``config``: ``DaemonConfig``, the one frozen description of a daemon that ``homeport up``, the
  client and the daemon itself all build.
- ``main``: the lifecycle (lock, token, store, proxy, supervisor; foreground and ``-d``).
- ``control``: the ``ControlApp`` behind ``homeport.localhost`` (JSON API, login link).
- ``client``: the CLI's HTTP client to the daemon; starts the daemon when asked to.
"""
