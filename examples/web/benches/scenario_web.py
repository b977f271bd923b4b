"""The web charm's config-changed logic written with ops, run by ops' Scenario (ops[testing]).

The peer of benches/component.rs: the same scenario (a unit serving on port 8080 gets
config-changed: check the port, connect, make the site directory, look for db.txt, add the
layer with its check, replan, keep the port in stored state, set the status). Prints the
mean seconds per event of N runs (argv[1]) after a warm-up.
"""

import sys
import time

import ops
from ops import testing

META = {"name": "web", "containers": {"web": {"resource": "web-image"}}}
CONFIG = {
    "options": {
        "port": {"type": "int", "default": 8080},
        "site-dir": {"type": "string", "default": "/tmp/cairn-web"},
        "check-period": {"type": "string", "default": "5s"},
    }
}


class WebCharm(ops.CharmBase):
    _stored = ops.StoredState()

    def __init__(self, framework):
        super().__init__(framework)
        self._stored.set_default(port=None)
        framework.observe(self.on.config_changed, self._reconcile)

    def _reconcile(self, _event):
        port = self.config["port"]
        web = self.unit.get_container("web")
        if not 1 <= port <= 65535:
            self.unit.status = ops.BlockedStatus(f"invalid port {port}: must be between 1 and 65535")
            return
        if not web.can_connect():
            self.unit.status = ops.WaitingStatus("waiting for Pebble in the web container")
            return
        period = self.config["check-period"]
        site = self.config["site-dir"]
        web.make_dir(site, make_parents=True)
        served = f"{site}/db.txt"
        if web.exists(served):
            web.remove_path(served)
        layer = {
            "summary": "web layer",
            "services": {
                "http": {
                    "override": "replace",
                    "summary": "python http.server",
                    "command": f"python3 -m http.server {port} --bind 127.0.0.1 --directory {site}",
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
        self.unit.status = ops.ActiveStatus(f"serving on port {port}")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    ctx = testing.Context(WebCharm, meta=META, config=CONFIG)
    state = testing.State(containers={testing.Container("web", can_connect=True)})
    serving = ctx.run(ctx.on.config_changed(), state)
    for _ in range(50):
        ctx.run(ctx.on.config_changed(), serving)
    t = time.perf_counter()
    for _ in range(n):
        ctx.run(ctx.on.config_changed(), serving)
    print((time.perf_counter() - t) / n)


if __name__ == "__main__":
    main()
