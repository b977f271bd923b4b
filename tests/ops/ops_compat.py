"""Drives a Cairn Pebble API socket with the real Python `ops.pebble.Client`, unchanged.

Usage: python ops_compat.py <socket path>. Prints one line per passed step and exits
non-zero on the first failure (the Rust end-to-end test runs it).
"""

import datetime
import sys
import time

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

client.add_layer(
    "checks",
    {
        "checks": {
            "alive": {
                "override": "replace",
                "level": "alive",
                "period": "100ms",
                "threshold": 2,
                "exec": {"command": "true"},
            },
            "dead": {
                "override": "replace",
                "period": "100ms",
                "threshold": 1,
                "exec": {"command": "false"},
            },
        }
    },
)
deadline = time.time() + 10
while time.time() < deadline:
    checks = {c.name: c for c in client.get_checks()}
    # "alive" may miss its 100 ms timeout on a busy machine; one success brings it back up.
    if (
        "dead" in checks
        and checks["dead"].status == pebble.CheckStatus.DOWN
        and checks["alive"].status == pebble.CheckStatus.UP
    ):
        break
    time.sleep(0.05)
assert checks["dead"].status == pebble.CheckStatus.DOWN, checks
assert checks["dead"].failures >= 1 and checks["dead"].threshold == 1, checks
assert checks["alive"].status == pebble.CheckStatus.UP, checks
assert checks["alive"].level == pebble.CheckLevel.ALIVE, checks
assert [c.name for c in client.get_checks(level=pebble.CheckLevel.ALIVE)] == ["alive"]
assert [c.name for c in client.get_checks(names=["dead"])] == ["dead"]
assert client.stop_checks(["dead", "alive"]) == ["alive", "dead"]
assert client.get_checks(names=["dead"])[0].status == pebble.CheckStatus.INACTIVE
assert client.start_checks(["dead"]) == ["dead"]
step("get_checks + start_checks + stop_checks")

nid = client.notify(pebble.NoticeType.CUSTOM, "example.com/ops/compat", data={"a": "b"})
nid2 = client.notify(
    pebble.NoticeType.CUSTOM,
    "example.com/ops/compat",
    data={"a": "c"},
    repeat_after=datetime.timedelta(hours=1),
)
assert nid == nid2, (nid, nid2)
found = client.get_notices(types=[pebble.NoticeType.CUSTOM], keys=["example.com/ops/compat"])
assert len(found) == 1, found
assert found[0].occurrences == 2 and found[0].last_data == {"a": "c"}, found
notice = client.get_notice(nid)
assert notice.key == "example.com/ops/compat" and notice.type == pebble.NoticeType.CUSTOM, notice
assert notice.repeat_after == datetime.timedelta(hours=1), notice
assert notice.expire_after == datetime.timedelta(days=7), notice
changes = client.get_notices(types=[pebble.NoticeType.CHANGE_UPDATE])
assert changes and all(n.type == pebble.NoticeType.CHANGE_UPDATE for n in changes), changes
expect_api_error(
    400,
    'invalid key "bad" (must be in "example.com/path" format)',
    client.notify,
    pebble.NoticeType.CUSTOM,
    "bad",
)
expect_api_error(404, 'cannot find notice with ID "999"', client.get_notice, "999")
step("notify + get_notices + get_notice")

import os
import tempfile

root = tempfile.mkdtemp(prefix="cairn-ops-files-")
client.push(f"{root}/a/b/hello.txt", "hello, world\n", make_dirs=True, permissions=0o600)
assert client.pull(f"{root}/a/b/hello.txt").read() == "hello, world\n"
blob = bytes(range(256)) * 4096
client.push(f"{root}/blob.bin", blob)
assert client.pull(f"{root}/blob.bin", encoding=None).read() == blob
files = client.list_files(f"{root}/a/b")
assert [f.name for f in files] == ["hello.txt"], files
assert files[0].type == pebble.FileType.FILE and files[0].size == 13, files
assert files[0].permissions == 0o600, files
assert [f.name for f in client.list_files(root, pattern="*.bin")] == ["blob.bin"]
itself = client.list_files(f"{root}/a", itself=True)
assert len(itself) == 1 and itself[0].type == pebble.FileType.DIRECTORY, itself
client.make_dir(f"{root}/x/y", make_parents=True, permissions=0o750)
assert oct(os.stat(f"{root}/x/y").st_mode & 0o777) == oct(0o750)
try:
    client.make_dir(f"{root}/x")
    raise AssertionError("make_dir of an existing directory succeeded")
except pebble.PathError as e:
    assert e.kind == "generic-file-error" and e.message == f"mkdir {root}/x: file exists", e
try:
    client.pull(f"{root}/missing")
    raise AssertionError("pull of a missing file succeeded")
except pebble.PathError as e:
    assert e.kind == "not-found", e
    assert e.message == f"stat {root}/missing: no such file or directory", e
try:
    client.push("relative/path", "x")
    raise AssertionError("push of a relative path succeeded")
except pebble.PathError as e:
    assert e.kind == "generic-file-error" and "paths must be absolute" in e.message, e
try:
    client.push(f"{root}/nodir/f", "x")
    raise AssertionError("push without make_dirs succeeded")
except pebble.PathError as e:
    assert e.kind == "not-found", e
assert not os.path.exists(f"{root}/nodir")
try:
    client.remove_path(f"{root}/a")
    raise AssertionError("non-recursive remove of a directory succeeded")
except pebble.PathError as e:
    assert e.message == f"remove {root}/a: directory not empty", e
client.remove_path(f"{root}/a", recursive=True)
assert not os.path.exists(f"{root}/a")
client.remove_path(root, recursive=True)
step("push + pull + list_files + make_dir + remove_path")

out, err = client.exec(["echo", "hi"]).wait_output()
assert (out, err) == ("hi\n", ""), (out, err)
out, _ = client.exec(["cat"], stdin="piped in").wait_output()
assert out == "piped in", out
out, _ = client.exec(["cat"], stdin=b"\x00bytes\xff", encoding=None).wait_output()
assert out == b"\x00bytes\xff", out
out, _ = client.exec(
    ["sh", "-c", "echo $FOO; pwd"], environment={"FOO": "bar"}, working_dir="/tmp"
).wait_output()
assert out == "bar\n/tmp\n", out
try:
    client.exec(["sh", "-c", "echo oops >&2; exit 42"]).wait_output()
    raise AssertionError("exit 42 did not raise")
except pebble.ExecError as e:
    assert e.exit_code == 42 and e.stderr == "oops\n", e
try:
    client.exec(["sleep", "10"], timeout=0.5).wait_output()
    raise AssertionError("timeout did not raise")
except pebble.ChangeError as e:
    # As with Pebble: the exec change fails with Go's timeout text.
    assert "timed out after 500ms: context deadline exceeded" in e.err, e
proc = client.exec(["sleep", "10"])
time.sleep(0.2)
proc.send_signal("SIGTERM")
try:
    proc.wait()
    raise AssertionError("a signalled exec did not fail")
except pebble.ExecError as e:
    assert e.exit_code == 128 + 15, e
try:
    client.exec(["no-such-command-cairn"])
    raise AssertionError("exec of a missing command succeeded")
except pebble.APIError as e:
    assert e.code == 400 and e.message == 'cannot find executable "no-such-command-cairn"', e
step("exec + wait_output + ExecError + timeout + send_signal")

# ops' own real-Pebble test_identities, step for step.
assert len(client.get_identities()) == 0
identities = {
    "web": pebble.Identity.from_dict({
        "access": "metrics",
        "basic": {
            "password": "$6$et3kBQywmQQ./htQ$MuUHB8DyxOzZT//NXas0aT.P0j0DJA8fCWvpOJ9kn9O0HIlAvEcAJVGQ6OVr23ndtK9kiNgCnMs2NJtDe/nhC1"  # noqa: E501
        },
    }),
    "alice": pebble.Identity.from_dict({"access": "admin", "local": {"user-id": 42}}),
}
client.replace_identities(identities)
identities = client.get_identities()
assert len(identities) == 2, identities
assert identities["web"].access == pebble.IdentityAccess.METRICS, identities
assert identities["web"].basic is not None and identities["web"].basic.password == "*****"
assert identities["alice"].access == pebble.IdentityAccess.ADMIN, identities
assert identities["alice"].local is not None and identities["alice"].local.user_id == 42
identities["alice"].local.user_id = 1000
client.replace_identities(identities)
identities = client.get_identities()
assert identities["alice"].local is not None and identities["alice"].local.user_id == 1000
expect_api_error(
    400,
    "identities do not exist: bob",
    client.remove_identities,
    {"bob"},
)
client.remove_identities({"web", "alice"})
assert len(client.get_identities()) == 0
step("get_identities + replace_identities + remove_identities")

client.stop_services(["svc"])
print(f"ops {ops.__version__}: all steps passed", flush=True)
