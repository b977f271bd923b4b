#!/usr/bin/env python3
"""The benchmark's ops charm: the `web` example's config-changed written with ops."""

import logging

import ops

logger = logging.getLogger(__name__)


class Web(ops.CharmBase):
    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        framework.observe(self.on.config_changed, self._on_config_changed)

    def _on_config_changed(self, event: ops.ConfigChangedEvent):
        port = int(self.config["port"])
        if not 0 < port < 65536:
            self.unit.status = ops.BlockedStatus(f"invalid port {port}: must be between 1 and 65535")
            return
        web = self.unit.get_container("web")
        if not web.can_connect():
            self.unit.status = ops.WaitingStatus("waiting for Pebble in the web container")
            return
        period = self.config.get("check-period", "5s")
        layer = {
            "summary": "web layer",
            "services": {
                "http": {
                    "override": "replace",
                    "summary": "python http.server",
                    "command": f"python3 -m http.server {port} --bind 127.0.0.1",
                    "startup": "enabled",
                    "environment": {"PORT": str(port)},
                }
            },
            "checks": {
                "up": {
                    "override": "replace",
                    "level": "ready",
                    "period": period,
                    "threshold": 3,
                    "http": {"url": f"http://127.0.0.1:{port}/"},
                }
            },
        }
        web.add_layer("web", layer, combine=True)
        web.replan()
        self._stored.port = port
        logger.info("serving on port %d", port)
        self.unit.status = ops.ActiveStatus(f"serving on port {port}")


if __name__ == "__main__":
    ops.main(Web)
