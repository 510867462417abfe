"""Run the gateway daemon with the dashboard mounted, as the wiring patch will (test harness).

``python tests/browser/dashboard_harness.py PORT`` runs in the foreground with the state dir
from ``HOMEPORT_STATE_DIR`` and prints one line, ``ready {json}``, once it listens. It is the
daemon's own ``run_foreground`` with ``homeport.web.install`` called on its ControlApp and the
dashboard closed with the Gateway: the two hooks of /work/prompts/dashboard-wiring.patch.
``HOMEPORT_SAMPLE_INTERVAL`` sets the sampler's interval (seconds).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from homeport import web
from homeport.daemon import main
from homeport.daemon.config import DaemonConfig


class _Gateway(main.Gateway):
    dashboard: Any = None

    async def close(self) -> None:
        if self.dashboard is not None:
            await self.dashboard.close()
        await super().close()


class _App(main.ControlApp):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        interval = float(os.environ.get("HOMEPORT_SAMPLE_INTERVAL", "1.0"))
        dash = web.install(self, interval=interval, watch_interval=min(0.5, interval))
        dash.start()
        self.gateway.dashboard = dash  # type: ignore[attr-defined]


def run(port: int) -> int:
    main.Gateway = _Gateway  # type: ignore[misc]
    main.ControlApp = _App  # type: ignore[misc]
    main.setup_logging()
    config = DaemonConfig.build(port=port)
    return main.run_foreground(config, ready_fd=os.dup(1))


if __name__ == "__main__":
    sys.exit(run(int(sys.argv[1])))
