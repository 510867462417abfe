"""Run dev servers on free ports behind ``NAME.localhost`` (``homeport run``).

- ``flags``: pure data and rules: which flags make uvicorn, gunicorn, flask, Django's
  ``runserver``, ``python -m http.server``, vite, next, astro and webpack-dev-server listen on
  the port homeport picked (``PORT`` is set for every command as well).
- ``runner``: the edge: start the command in its own process group, stream its output, wait
  until it listens, register it with the daemon, and stop the whole group at the end.
- ``password``: the edge of ``--auth basic:USER`` for ``up``, ``run`` and ``route add``: the
  password from ``HOMEPORT_AUTH_PASSWORD`` (then wiped, even from ``/proc/PID/environ``) or
  the terminal; the rules are ``homeport.daemon.routes.resolve_auth``.
"""
