"""Every node: its process runs as the expected user, listens on its own address and ports
only, and keeps its data in a directory only that user can enter."""

from __future__ import annotations

import re

import pytest

from datakit.stack.schema import Node
from datakit.verify import Mismatch

# The system user each service's process runs as (the Debian packages' users).
SERVICE_USER = {"postgres": "postgres", "redis": "redis", "sentinel": "redis", "kafka": "kafka",
                "etcd": "etcd", "exporter": "prometheus", "prometheus": "prometheus"}
_SS_PID = re.compile(r"pid=(\d+)")


def _address(text: str) -> str:
    """An address without IPv4-mapped IPv6 decoration: [::ffff:127.0.0.1] -> 127.0.0.1"""
    return text.replace("[::ffff:", "").replace("::ffff:", "").replace("]", "")


def _listener_pid(host, node: Node) -> int:
    out = host.run("ss -Hltnp 'sport = :%s'", str(node.port))
    if out.rc != 0:
        raise RuntimeError(f"ss failed: {out.stderr.strip()} (install iproute2 on the host)")
    pids = {int(p) for p in _SS_PID.findall(out.stdout)}
    if not pids:
        raise Mismatch(f"nothing listens on port {node.port}")
    return min(pids)


def _listening(host, pid: int) -> list[str]:
    out = host.check_output("ss -Hltnp")
    found = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 6 and f"pid={pid}," in line:
            found.append(_address(fields[3]))
    return sorted(set(found))


def test_process_user(any_node, host_of, checker):
    host = host_of(any_node)
    want = SERVICE_USER[any_node.service]

    def probe() -> str:
        pid = _listener_pid(host, any_node)
        return host.check_output("ps -o user= -p %s", str(pid)).strip()

    checker.expect("process user", any_node.name, want, probe)


def test_listens_only_on_its_address(any_node, host_of, checker):
    host = host_of(any_node)
    address = any_node.host
    want = sorted(f"{address}:{port}" for port in (any_node.ports or
                                                   {"client": any_node.port}).values())

    def probe() -> list[str]:
        port = str(any_node.port)
        on_port = [_address(s.removeprefix("tcp://")) for s in host.socket.get_listening_sockets()
                   if s.startswith("tcp://") and s.rsplit(":", 1)[1] == port]
        if not on_port:
            raise Mismatch(f"nothing listens on port {port}")
        # Every address the client port is bound to, and every port the process holds.
        return sorted(set(on_port) | set(_listening(host, _listener_pid(host, any_node))))

    checker.expect("listens only on its address and ports", any_node.name, want, probe)


def _data_dir(node: Node, pg_connect) -> str:
    if node.service == "postgres":
        with pg_connect(node) as conn:
            return conn.execute("show data_directory").fetchone()[0]
    path = node.handle.data_dir
    if not path:
        pytest.skip(f"{node.name}: its outputs name no data dir on this substrate")
    return path


def test_data_dir_private(any_node, host_of, pg_connect, checker):
    host = host_of(any_node)
    user = SERVICE_USER[any_node.service]
    # PostgreSQL refuses a data dir group or others can enter; the others should too.
    want = f"0700 {user}" if any_node.service == "postgres" else f"0700 or stricter {user}"

    def probe() -> str:
        f = host.file(_data_dir(any_node, pg_connect))
        if not f.is_directory:
            raise Mismatch(f"{f.path} is not a directory")
        return f"{f.mode:04o} {f.user}"

    def ok(found: str) -> bool:
        mode, owner = found.split()
        if owner != user:
            return False
        return mode == "0700" if any_node.service == "postgres" \
            else int(mode, 8) & 0o077 == 0

    checker.expect("data dir private", any_node.name, want, probe, ok=ok)
