"""Drives a Cairn Pebble API socket with the real Python `ops.pebble.Client`, unchanged.

Usage: python ops_compat.py <socket path>. Prints one line per passed step and exits
non-zero on the first failure (the Rust end-to-end test runs it).
"""

import sys

import ops
from ops import pebble

sock = sys.argv[1]
client = pebble.Client(socket_path=sock)


def step(name):
    print(f"ok {name}", flush=True)


def expect_api_error(code, message, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except pebble.APIError as e:
        assert e.code == code, (e.code, e.message)
        assert e.message == message, e.message
        return e
    raise AssertionError(f"expected APIError {code} {message!r}")


info = client.get_system_info()
assert info.version, info
step("get_system_info")

layer = pebble.Layer(
    {
        "summary": "ops compat",
        "services": {
            "svc": {
                "override": "replace",
                "command": "/bin/sh -c 'echo started; exec sleep 1000'",
                "startup": "enabled",
                "environment": {"GREETING": "hi"},
            },
            "other": {"override": "replace", "command": "sleep 1001"},
        },
    }
)
client.add_layer("base", layer)
step("add_layer")

plan = client.get_plan()
assert set(plan.services) == {"svc", "other"}, plan.services
assert plan.services["svc"].command == "/bin/sh -c 'echo started; exec sleep 1000'", plan.services["svc"].command
assert plan.services["svc"].environment == {"GREETING": "hi"}
assert plan.services["svc"].startup == "enabled", plan.services["svc"].startup
step("get_plan")

expect_api_error(
    400, 'layer "base" already exists', client.add_layer, "base", layer
)
expect_api_error(
    400,
    'layer "broken" must define "override" for service "x"',
    client.add_layer,
    "broken",
    {"services": {"x": {"command": "true"}}},
)
assert set(client.get_plan().services) == {"svc", "other"}
step("add_layer errors")

client.replan_services()
svcs = {s.name: s for s in client.get_services()}
assert svcs["svc"].is_running(), svcs
assert svcs["svc"].startup == pebble.ServiceStartup.ENABLED
assert svcs["other"].current == pebble.ServiceStatus.INACTIVE
step("replan_services + get_services")

client.stop_services(["svc"])
assert client.get_services(["svc"])[0].current == pebble.ServiceStatus.INACTIVE
step("stop_services")

client.start_services(["svc", "other"])
assert all(s.is_running() for s in client.get_services(["svc", "other"]))
step("start_services")

client.restart_services(["other"])
assert client.get_services(["other"])[0].is_running()
step("restart_services")

change_id = client.stop_services(["other"], timeout=0)
change = client.wait_change(change_id, timeout=10)
assert change.ready and change.status == "Done", change
assert change.kind == "stop" and change.tasks[0].kind == "stop", change
step("wait_change")

changes = client.get_changes(select=pebble.ChangeState.ALL)
kinds = [c.kind for c in changes]
for kind in ("replan", "stop", "start", "restart"):
    assert kind in kinds, kinds
for_svc = client.get_changes(select=pebble.ChangeState.ALL, service="other")
assert for_svc and all(c.kind in ("start", "restart", "stop") for c in for_svc), for_svc
assert client.get_change(change_id).id == change_id
step("get_changes")

client.send_signal("SIGCONT", ["svc"])
expect_api_error(
    500,
    'cannot send signal to "other": service is not running',
    client.send_signal,
    "SIGHUP",
    ["other"],
)
step("send_signal")

expect_api_error(
    400,
    'cannot start services: service "nope" does not exist',
    client.start_services,
    ["nope"],
)
try:
    client.start_services(["svc"])
except pebble.ChangeError as e:
    raise AssertionError(f"starting a running service failed: {e}")
step("service errors")

client.stop_services(["svc"])
print(f"ops {ops.__version__}: all steps passed", flush=True)
