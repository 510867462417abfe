"""The gateway daemon's control plane: configuration, lifecycle, the control API and its client.

- ``config``: ``DaemonConfig``, the one frozen description of a daemon that ``homeport up``, the
  client and the daemon itself all build.
- ``process``: the daemon as a process from outside: lock, token, ``daemon.json``, ``-d`` start.
- ``main``: the daemon itself (store, gateway state, control app, proxy, dashboard; shutdown).
- ``state``: routes and supervised services; what the proxy is handed; the 502 status lookup.
- ``control`` + ``api``: the ``ControlApp`` behind ``homeport.localhost`` (guards, endpoints).
- ``client``: the CLI's HTTP client to the daemon; starts the daemon when asked to.
- ``routes``, ``procs``: pure rules for names/targets/auth; process identity and group stop.
- ``httpd``: a control-only HTTP server, used when the proxy is not installed.
"""
