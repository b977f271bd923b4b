#!/usr/bin/env python3
"""The benchmark's ops charm: config-changed as misbehave's `ok` mode does it."""

import ops


class Bench(ops.CharmBase):
    _stored = ops.StoredState()

    def __init__(self, framework: ops.Framework):
        super().__init__(framework)
        self._stored.set_default(handled=0)
        framework.observe(self.on.config_changed, self._on_config_changed)

    def _on_config_changed(self, event: ops.ConfigChangedEvent):
        mode = self.config.get("mode", "ok")
        if mode != "ok":
            self.unit.status = ops.BlockedStatus(f"unknown mode {mode!r}")
            return
        self._stored.handled += 1
        self.unit.status = ops.ActiveStatus(f"handled {self._stored.handled}")


if __name__ == "__main__":
    ops.main(Bench)
