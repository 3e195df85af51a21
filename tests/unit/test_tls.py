"""TLS without servers: the topology's tls section and its off switch, the certificates a
stack issues (SANs, issuer, expiry) and the problems verify reports of a node's certificate."""

from __future__ import annotations

import datetime as dt

import pytest

from datakit.errors import DatakitError
from datakit.nodes import certs, tls
from datakit.topology import from_config
from tests.unit.test_topology import PLENTY, local_config, problems_of, with_change


def test_tls_is_on_by_default():
    t = from_config(local_config(), stack="local", memory_total=PLENTY)
    assert (t.tls.enabled, t.tls.generation) == (True, 1)


def test_tls_off_is_refused_on_a_stack_that_is_not_disposable_naming_the_key():
    config = with_change("tls", {"enabled": False}, with_change("disposable", False))
    (line,) = problems_of(config)
    assert line.startswith("stack local: datakit:tls.enabled: false on a stack that is not "
                           "disposable")
    assert "allowed: true, or datakit:disposable true" in line


def test_tls_off_is_accepted_on_a_disposable_stack():
    t = from_config(with_change("tls", {"enabled": False}), stack="local", memory_total=PLENTY)
    assert t.tls.enabled is False and t.disposable


def test_a_generation_below_one_is_refused():
    (line,) = problems_of(with_change("tls", {"generation": 0}))
    assert line.startswith("stack local: datakit:tls.generation: ")


def test_a_node_certificate_covers_its_addresses_and_is_signed_by_the_stack_ca():
    ca = certs.new_ca("datakit local CA")
    pair = certs.issue(ca, "pg-1", ["127.0.0.1", "localhost", "pg-1"])
    assert certs.hosts(pair.cert) == ["127.0.0.1", "localhost", "pg-1"]
    assert certs.subject(pair.cert) == "pg-1"
    assert certs.signed_by(pair.cert, ca.cert)
    assert not certs.signed_by(pair.cert, certs.new_ca("another").cert)
    assert certs.problems(pair.cert, ca.cert, what="pg-1") == []


def test_a_foreign_or_expiring_certificate_is_a_problem_naming_the_node():
    ca, other = certs.new_ca("ours"), certs.new_ca("theirs")
    foreign = certs.issue(other, "pg-2", ["127.0.0.1"])
    (line,) = certs.problems(foreign.cert, ca.cert, what="node pg-2")
    assert line.startswith("node pg-2: its certificate ('pg-2') is not signed by the stack's CA")
    soon = certs.issue(ca, "pg-3", ["127.0.0.1"], days=10)
    (line,) = certs.problems(soon.cert, ca.cert, what="node pg-3")
    assert "within 30 days" in line and "tls.generation" in line
    assert certs.not_after(soon.cert) - dt.datetime.now(dt.UTC) < dt.timedelta(days=11)


def test_not_a_certificate_names_what_was_read():
    with pytest.raises(DatakitError, match="^node kafka-1: not a PEM certificate"):
        certs.not_after("garbage", what="node kafka-1")


def test_a_missing_ca_file_is_one_line_naming_it(tmp_path):
    with pytest.raises(DatakitError, match=f"the TLS ca file {tmp_path}/ca.crt is missing"):
        tls.libpq({"ca": str(tmp_path / "ca.crt")})


def test_up_collects_the_programs_warnings_for_the_cli_to_print():
    from types import SimpleNamespace

    from datakit.stack.progress import RunView

    view = RunView()
    diag = SimpleNamespace(severity="warning", message="stack x: TLS is off\n")
    view.on_event(SimpleNamespace(resource_pre_event=None, res_outputs_event=None,
                                  res_op_failed_event=None, diagnostic_event=diag))
    assert view.warnings == ["stack x: TLS is off"]


def _tls_outputs(tmp_path, **paths):
    from tests.support.stack_outputs import document

    files = {"ca_path": str(tmp_path / "ca.crt"), "cert_path": str(tmp_path / "client.crt"),
             "key_path": str(tmp_path / "client.key"), **paths}
    node = {"service": "redis", "role": "master", "name": "redis-1", "host": "127.0.0.1",
            "port": 61000, "handle": {"kind": "local"}, "testinfra": "local://"}
    return document({"tls": {"enabled": True, **files}, "nodes": [node],
                     "endpoints": {"redis": {"tls": True}}})


def test_outputs_give_each_tls_node_the_kits_client_files(tmp_path):
    for name in ("ca.crt", "client.crt", "client.key"):
        (tmp_path / name).write_text("x")
    out = _tls_outputs(tmp_path)
    assert out.node("redis-1").client_tls == out.client_tls() == {
        "ca": str(tmp_path / "ca.crt"), "cert": str(tmp_path / "client.crt"),
        "key": str(tmp_path / "client.key")}
    assert "client_tls" not in out.model_dump()["nodes"][0]  # derived, never written
    assert out.speaks_tls("redis") and not out.speaks_tls("kafka")


def test_a_missing_ca_file_the_outputs_name_is_one_line_naming_it_and_its_key(tmp_path):
    out = _tls_outputs(tmp_path)
    with pytest.raises(DatakitError, match=rf"TLS file {tmp_path}/ca.crt \(outputs "
                                           r"tls.ca_path\) is missing"):
        out.client_tls()
