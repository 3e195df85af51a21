"""Fixtures of the verify suite: the stack under test, one test per node, testinfra hosts.

`datakit verify` writes a context file (outputs with secrets, topology, timeout) and names
it in $DATAKIT_VERIFY_CONTEXT; the outputs are read into the typed model (StackOutputs, its
nodes `Node`s). A test asks for `pg_node`, `redis_node`, `sentinel_node`, `kafka_node`,
`etcd_node`, `any_node` or `topic` and runs once per such node (ids are node names, so `-k pg-2`
selects one node). Every check goes through `checker.expect` (datakit.verify),
which retries until ready up to the timeout and records expected, found and waited_s.
"""

from __future__ import annotations

import json
import os

import pytest
import testinfra

from datakit.nodes.postgres_client import connect, live_primary
from datakit.nodes.readiness import NotReady, wait_until
from datakit.stack.schema import Node, Secrets, StackOutputs
from datakit.topology import Topology
from datakit.verify.expect import Checker

NODE_PARAMS = {"pg_node": "postgres", "redis_node": "redis", "sentinel_node": "sentinel",
               "kafka_node": "kafka", "etcd_node": "etcd", "exporter_node": "exporter"}


def pytest_ignore_collect(collection_path, config):
    """Outside `datakit verify` (a bare `pytest tests/`), there is no stack: collect nothing."""
    if not os.environ.get("DATAKIT_VERIFY_CONTEXT") and collection_path.suffix == ".py":
        return True
    return None


def _context(config: pytest.Config) -> dict:
    if not hasattr(config, "_datakit_context"):
        path = os.environ.get("DATAKIT_VERIFY_CONTEXT")
        if not path:
            raise pytest.UsageError("run this suite with `datakit verify --stack NAME`")
        with open(path) as src:
            ctx = json.load(src)
        ctx["topology"] = Topology.model_validate(ctx["topology"])
        ctx["outputs"] = StackOutputs.model_validate(ctx["outputs"])
        config._datakit_context = ctx
    return config._datakit_context


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    ctx = _context(metafunc.config)
    outputs: StackOutputs = ctx["outputs"]
    for fixture, service in NODE_PARAMS.items():
        if fixture in metafunc.fixturenames:
            chosen = outputs.of(service)
            metafunc.parametrize(fixture, chosen, ids=[n.name for n in chosen])
    if "any_node" in metafunc.fixturenames:
        metafunc.parametrize("any_node", outputs.nodes, ids=[n.name for n in outputs.nodes])
    if "metrics_target" in metafunc.fixturenames:
        metrics = outputs.endpoints.metrics
        targets = metrics.targets if metrics else []
        metafunc.parametrize("metrics_target", targets,
                             ids=[f"{t.node}-{t.job}" for t in targets])
    if "topic" in metafunc.fixturenames:
        topics = ctx["topology"].kafka.topics if outputs.of("kafka") else []
        metafunc.parametrize("topic", topics, ids=[t.name for t in topics])


@pytest.fixture(scope="session")
def context(pytestconfig) -> dict:
    return _context(pytestconfig)


@pytest.fixture(scope="session")
def outputs(context) -> StackOutputs:
    return context["outputs"]


@pytest.fixture(scope="session")
def topology(context) -> Topology:
    return context["topology"]


@pytest.fixture(scope="session")
def secrets(outputs) -> Secrets:
    return outputs.need_secrets()


@pytest.fixture(scope="session")
def nodes_of(outputs):
    return outputs.of


@pytest.fixture
def checker(request, context) -> Checker:
    return Checker(request.node, float(context["timeout"]))


@pytest.fixture(scope="session")
def host_of():
    """The testinfra host of a node, from its outputs' URL (local://, docker://, ssh://)."""
    hosts: dict[str, object] = {}

    def of(node: Node):
        url = node.testinfra or "local://"
        if url not in hosts:
            hosts[url] = testinfra.get_host(url)
        return hosts[url]
    return of


@pytest.fixture(scope="session")
def pg_connect(outputs, secrets):
    """An autocommit superuser connection to a PostgreSQL node (over TCP, SCRAM; over TLS
    with the stack's CA unless the stack switched TLS off)."""
    user = outputs.endpoints.postgres.superuser

    def conn(node: Node, dbname: str = "postgres"):
        return connect(node, user=user, password=secrets.postgres.superuser,
                       dbname=dbname, timeout=2, tls_files=outputs.client_tls())
    return conn


@pytest.fixture(scope="session")
def pg_primary(nodes_of, outputs, secrets, context) -> Node | None:
    """The live primary, asked of the servers (never the initial role); None if none
    answers as one within the timeout (test_one_primary reports that)."""
    user = outputs.endpoints.postgres.superuser
    nodes = nodes_of("postgres")
    try:
        return wait_until(lambda: live_primary(nodes, user=user,
                                               password=secrets.postgres.superuser,
                                               tls_files=outputs.client_tls()),
                          what="the live PostgreSQL primary", timeout=context["timeout"])
    except NotReady:
        return None
    except Exception:  # noqa: BLE001 - two primaries: test_one_primary says so
        return None
