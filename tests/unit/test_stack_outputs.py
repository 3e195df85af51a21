"""Reading stack outputs: a file of the schema's shape stands in for a stack, the app
password goes into the DSNs once, and a file that does not fit is one line naming the file
and the first field that does not fit."""

from __future__ import annotations

import json

import pytest

from datakit.stack import outputs
from datakit.stack.outputs import BadOutputs
from tests.support.stack_outputs import raw

NODE = {"service": "postgres", "role": "primary", "name": "pg-1", "host": "127.0.0.1",
        "port": 64100, "ports": {"client": 64100}, "testinfra": "local://",
        "handle": {"kind": "local", "pid": 42, "start_time": 7, "data_dir": "/d/pg-1"}}
DSN = "host=127.0.0.1 port=64100 dbname=app user=app target_session_attrs=read-write"


def _file(tmp_path, document) -> str:
    path = tmp_path / "outputs.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def test_a_file_stands_in_for_the_stack_with_the_password_in_its_dsns(tmp_path, monkeypatch):
    doc = raw({"stack": "elsewhere", "nodes": [NODE], "secrets": {"postgres": {"app": "pw"}},
               "endpoints": {"postgres": {"write_dsn": DSN, "read_dsn": DSN}}})
    monkeypatch.setenv(outputs.FILE_ENV, _file(tmp_path, doc))
    out = outputs.read("ignored")
    assert out.stack == "elsewhere"
    assert out.endpoints.postgres.write_dsn == f"{DSN} password=pw"
    assert out.with_passwords().endpoints.postgres.read_dsn == f"{DSN} password=pw"  # once
    assert out.node("pg-1").handle.pid == 42 and out.of("postgres") == out.nodes
    assert [str(d) for d in out.data_dirs()] == ["/d/pg-1"]


def test_without_secrets_the_dsns_stay_as_written(tmp_path, monkeypatch):
    doc = raw({"endpoints": {"postgres": {"write_dsn": DSN}}})
    monkeypatch.setenv(outputs.FILE_ENV, _file(tmp_path, doc))
    assert outputs.read("x").endpoints.postgres.write_dsn == DSN


@pytest.mark.parametrize(("change", "field"), [
    ({"nodes": [{**NODE, "handle": {"kind": "ssh"}}]}, "nodes[0].handle.kind"),
    ({"nodes": [{k: v for k, v in NODE.items() if k != "port"}]}, "nodes[0].port"),
    ({"endpoints": {"kafka": {"bootstrap_servers": None}}}, "endpoints.kafka.bootstrap_servers"),
])
def test_a_file_that_does_not_fit_names_itself_and_the_first_bad_field(
        tmp_path, monkeypatch, change, field):
    path = _file(tmp_path, raw(change))
    monkeypatch.setenv(outputs.FILE_ENV, path)
    with pytest.raises(BadOutputs) as caught:
        outputs.read("x")
    message = str(caught.value)
    assert message.startswith(f"{path} ($DATAKIT_OUTPUTS_FILE): {field}: ")
    assert "\n" not in message and "StackOutputs" in message


def test_a_missing_part_and_a_broken_file_are_one_line_each(tmp_path, monkeypatch):
    doc = raw()
    del doc["stack"]
    monkeypatch.setenv(outputs.FILE_ENV, _file(tmp_path, doc))
    with pytest.raises(BadOutputs, match=r"\): stack: Field required; make them fit"):
        outputs.read("x")
    monkeypatch.setenv(outputs.FILE_ENV, _file(tmp_path, "{not json"))
    with pytest.raises(BadOutputs, match=r"outputs\.json \(\$DATAKIT_OUTPUTS_FILE\): not JSON"):
        outputs.read("x")
    monkeypatch.setenv(outputs.FILE_ENV, str(tmp_path / "absent.json"))
    with pytest.raises(BadOutputs, match="cannot read it"):
        outputs.read("x")


def test_a_stack_without_outputs_says_to_bring_it_up():
    with pytest.raises(outputs.NoOutputs, match="run `datakit up --stack dev`"):
        outputs.of_stack("dev", raw={})
