"""The local node control on a real Redis server: status, pause and resume, stop and
start, kill, through `control_for` as drills use it."""

from __future__ import annotations

import pytest
import redis as redis_py

from datakit.nodes import redis as rd
from datakit.nodes.control import control_for
from datakit.nodes.control.local import LocalControl
from datakit.stack.schema import Node
from tests.support.stack_outputs import document

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node(workdir, free_port, password, teardown):
    """A standalone Redis server, described as a stack's outputs describe a local node."""
    pw = password("control")
    props = {"name": "ctl1", "port": free_port(), "data_dir": str(workdir / "ctl1"),
             "password": pw, "settings": {}, "replica": False, "peers": []}
    teardown.add("delete ctl1", lambda: rd.delete(props, None))
    outs = rd.create_server(props)
    node = Node(name="ctl1", service="redis", role="master", host=outs["host"],
                port=outs["port"], testinfra="local://",
                handle={"kind": "local", "pid": outs["pid"], "start_time": outs["start_time"],
                        "data_dir": outs["data_dir"], "log": outs["log_path"]})
    return node, document({"nodes": [node], "secrets": {"redis": {"default": pw}}})


def _ping(node: Node, password: str) -> bool:
    client = redis_py.Redis(host=node.host, port=node.port, password=password,
                            socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis_py.RedisError:
        return False
    finally:
        client.close()


def test_a_local_handle_gets_the_local_control(node):
    assert isinstance(control_for(*node), LocalControl)


def test_pause_freezes_the_server_and_resume_thaws_it(node):
    spec, outputs = node
    ctl, pw = control_for(spec, outputs), outputs.secrets.redis.default
    assert ctl.status() == "running" and _ping(spec, pw)
    ctl.pause()
    try:
        assert ctl.status() == "paused"
        assert ctl.running()  # its process is still there
        assert not _ping(spec, pw)  # but it answers nothing
    finally:
        ctl.resume()
    assert ctl.status() == "running" and _ping(spec, pw)


def test_stop_then_start_and_kill_then_start(node):
    spec, outputs = node
    ctl, pw = control_for(spec, outputs), outputs.secrets.redis.default
    ctl.stop()
    assert ctl.status() == "stopped" and not ctl.running() and not _ping(spec, pw)
    ctl.start()
    assert ctl.status() == "running" and _ping(spec, pw)
    ctl.kill()
    assert ctl.status() == "stopped" and not _ping(spec, pw)
    ctl.start()
    assert ctl.status() == "running" and _ping(spec, pw)
