"""The dashboard at ``http://127.0.0.1:62893``: JSON API handlers, live updates, static files.

Wiring into the daemon is one call after the ``ControlApp`` exists, and two lines of
lifecycle::

    dashboard = homeport.web.install(app)   # endpoints + static files on the ControlApp
    dashboard.start()                       # sampler + store watcher (loop running)
    ...
    await dashboard.close()                 # ends live streams, stops dashboard-started services

``install`` puts the dashboard's endpoints *before* the control plane's own, so its ``/``
(the page) replaces the placeholder index; every other control endpoint keeps working.
The page, its script and its style sheet ship inside the package (``homeport/web/static``):
no build step, nothing fetched from a CDN.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from homeport.daemon.control import ControlApp
    from homeport.web.live import Dashboard

__all__ = ["install"]


def install(app: ControlApp, *, interval: float = 1.0, watch_interval: float = 0.5) -> Dashboard:
    """Mount the dashboard on ``app`` and return it (not started: call ``start``)."""
    from homeport.web.api import Handlers
    from homeport.web.live import Dashboard

    dash = Dashboard(app, interval=interval, watch_interval=watch_interval)
    before = len(app.endpoints)
    for method, path, handler, public in Handlers(dash).table():
        app.add(method, path, handler, public=public)
    # First match wins in ControlApp._find: ours go to the front of the table.
    ours = app.endpoints[before:]
    del app.endpoints[before:]
    app.endpoints[:0] = ours
    return dash
