"""DockerControl against a real Docker engine: a node's container stopped, killed, started,
paused, resumed and exec'd into through the Docker API, built from a node row shaped like
the docker substrate's outputs."""

from __future__ import annotations

import pytest

from datakit.errors import DatakitError
from datakit.nodes.control import control_for
from datakit.nodes.control.docker import DockerControl
from datakit.stack.schema import Node
from tests.support.stack_outputs import document

pytestmark = pytest.mark.slow


def health_check(shell: str, retries: int = 3) -> dict:
    """A container health check run every second (the engine counts in nanoseconds)."""
    return {"test": ["CMD-SHELL", shell], "interval": 1_000_000_000,
            "timeout": 5_000_000_000, "retries": retries, "start_period": 0}


def control(row: Node) -> DockerControl:
    return DockerControl(row, document({"nodes": [row]}))


def state(engine, row: Node) -> dict:
    return engine.client.api.inspect_container(row.handle.container)["State"]


def test_a_running_node_reports_running_and_names_itself(make_node):
    row = make_node()
    ctl = control(row)
    assert (ctl.name, ctl.service) == ("pg-1", "postgres")
    assert ctl.status() == "running"
    assert ctl.running()


def test_control_for_picks_docker_control_for_a_docker_handle(make_node):
    row = make_node()
    ctl = control_for(row, document({"nodes": [row]}))
    assert isinstance(ctl, DockerControl)
    assert ctl.status() == "running"


def test_stop_is_a_graceful_sigterm_and_start_waits_for_the_health_check(engine, make_node):
    row = make_node()
    ctl = control(row)
    ctl.stop()
    assert ctl.status() == "stopped"
    assert not ctl.running()
    assert state(engine, row)["ExitCode"] == 0  # the TERM trap ran: not killed
    logs = engine.client.containers.get(row.handle.container).logs().decode()
    assert "got TERM" in logs

    ctl.start()
    assert ctl.status() == "running"
    assert state(engine, row)["Health"]["Status"] == "healthy"


def test_kill_is_a_sigkill_and_start_brings_the_node_back(engine, make_node):
    row = make_node()
    ctl = control(row)
    ctl.kill()
    assert ctl.status() == "stopped"
    assert state(engine, row)["ExitCode"] == 128 + 9
    logs = engine.client.containers.get(row.handle.container).logs().decode()
    assert "got TERM" not in logs
    ctl.start()
    assert ctl.status() == "running"


def test_stop_kill_and_start_are_no_ops_when_already_done(make_node):
    ctl = control(make_node())
    ctl.start()
    assert ctl.status() == "running"
    ctl.stop()
    ctl.stop()
    ctl.kill()
    assert ctl.status() == "stopped"


def test_pause_freezes_the_node_and_resume_thaws_it(engine, make_node):
    row = make_node()
    ctl = control(row)
    ctl.pause()
    ctl.pause()
    assert ctl.status() == "paused"
    assert ctl.running()  # its processes exist, frozen
    assert state(engine, row)["Paused"]
    with pytest.raises(DatakitError, match="pg-1: cannot run true .* it is paused"):
        ctl.exec(["true"])
    ctl.resume()
    ctl.resume()
    assert ctl.status() == "running"
    assert ctl.exec(["true"]) == (0, "")


def test_a_paused_node_stops_gracefully_and_can_be_killed(engine, make_node):
    row = make_node()
    ctl = control(row)
    ctl.pause()
    ctl.stop()
    assert state(engine, row)["ExitCode"] == 0
    ctl.start()
    ctl.pause()
    ctl.kill()
    assert ctl.status() == "stopped"
    assert state(engine, row)["ExitCode"] == 128 + 9


def test_start_resumes_a_paused_node(make_node):
    ctl = control(make_node())
    ctl.pause()
    ctl.start()
    assert ctl.status() == "running"


def test_exec_returns_the_exit_code_and_both_streams(make_node):
    ctl = control(make_node())
    code, out = ctl.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert code == 3
    assert sorted(out.split()) == ["err", "out"]  # the two streams interleave freely
    assert ctl.exec(["sh", "-c", 'echo "$WHO:$(id -u)"'], user="65534:65534",
                    env={"WHO": "drill"}) == (0, "drill:65534\n")


def test_exec_in_a_stopped_node_says_to_start_it(make_node):
    ctl = control(make_node())
    ctl.stop()
    with pytest.raises(DatakitError, match="pg-1: cannot run true .* it is stopped; start or"):
        ctl.exec(["true"])


def test_start_of_a_node_whose_health_check_never_passes_fails_naming_it(make_node):
    never = health_check("test -f /tmp/never", retries=1000)
    row = make_node("redis", "redis-2", role="replica", health=never)
    ctl = control(row)
    ctl.stop()
    with pytest.raises(DatakitError) as err:
        ctl.start(timeout=3)
    message = str(err.value)
    assert "node redis-2" in message
    assert row.handle.container in message
    assert "not ready after 3s" in message
    assert "last check exited 1" in message
    assert "docker logs" in message


def test_start_of_a_node_that_exits_says_with_what_code_and_output(make_node):
    crash = "if [ -f /tmp/started ]; then echo config broken; exit 3; fi; touch /tmp/started; " \
            + "while true; do sleep 1 & wait $!; done"
    row = make_node("kafka", "kafka-1", role="broker+controller", command=crash,
                    health=health_check("test -f /tmp/healthy"))
    ctl = control(row)
    ctl.kill()
    with pytest.raises(DatakitError, match=r"kafka-1.*exited with code 3.*config broken"):
        ctl.start()


def test_a_node_without_health_check_is_started_once_it_runs(make_node):
    ctl = control(make_node("sentinel", "sentinel-1", role="sentinel", health=None))
    ctl.stop()
    ctl.start()
    assert ctl.status() == "running"


def test_start_as_replica_repoints_the_redis_config_before_the_node_runs(engine, make_node):
    conf = "port 63011\nrequirepass \"x\"\nreplicaof datakit-old-redis-9 63019\n"
    # The node's process reports the config it found when it started; it is healthy once
    # it has (the copy of an earlier start differs from a rewritten file).
    command = "cp /data/redis.conf /tmp/seen.conf; while true; do sleep 1 & wait $!; done"
    seen_current = health_check("cmp -s /data/redis.conf /tmp/seen.conf")
    row = make_node("redis", "redis-1", role="master", port=63011, command=command,
                    health=seen_current, files={"/data/redis.conf": conf})
    master = make_node("redis", "redis-2", role="replica", port=63012)
    ctl = control(row)
    ctl.kill()
    ctl.start(replica_of=master)
    code, seen = ctl.exec(["cat", "/tmp/seen.conf"])
    assert code == 0
    assert seen.splitlines() == ["port 63011", 'requirepass "x"',
                                 f"replicaof {master.handle.container} 63012"]


def test_start_as_replica_of_a_node_without_redis_config_says_so(make_node):
    row = make_node("redis", "redis-1", role="master")
    master = make_node("redis", "redis-2", role="replica")
    ctl = control(row)
    ctl.stop()
    with pytest.raises(DatakitError, match="redis-1: .* has no /data/redis.conf to point at "
                                           "redis-2"):
        ctl.start(replica_of=master)
    assert ctl.status() == "stopped"


def test_a_removed_container_is_missing_and_acts_on_it_say_how_to_fix(engine, make_node):
    row = make_node()
    engine.client.containers.get(row.handle.container).remove(force=True)
    ctl = control(row)
    assert ctl.status() == "missing"
    assert not ctl.running()
    for act in (ctl.stop, ctl.kill, ctl.start, ctl.pause, ctl.resume,
                lambda: ctl.exec(["true"])):
        with pytest.raises(DatakitError, match=r"node pg-1: container .* is gone .*pulumi up"):
            act()


def test_no_engine_at_the_handles_url_is_one_clear_error(tmp_path):
    row = Node(service="postgres", role="primary", name="pg-1", host="127.0.0.1", port=63001,
               ports={"client": 63001}, testinfra="docker://x",
               handle={"kind": "docker", "container": "datakit-x-pg-1",
                       "docker_host": f"unix://{tmp_path}/nothing.sock"})
    with pytest.raises(DatakitError, match=r"node pg-1: no Docker engine answers at unix://"
                                           r".*nothing\.sock .*start it"):
        control(row).status()
