"""process-exporter (Debian's prometheus-process-exporter): the CPU time and resident
memory of every node of a stack, from /proc, one series group per node.

A node's processes are told apart by a regex on their command line: its data dir for most
(Patroni's patroni.yml, the postmaster's pgdata, Kafka's server.properties, etcd's
etcd.yml), its address for Redis and Sentinel (they rewrite their command line to it). A
postmaster's backends are its children, and count with it.

props keys: name, port, host (default 127.0.0.1), dir (its own: config and log; removed on
delete), groups ([{name, cmdline}]: a group per node, `cmdline` a regex), run_as (default
"prometheus"). outs keys: name, host, port, url, pid, start_time, log_path, start_s.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from datakit.errors import DatakitError
from datakit.nodes.metrics import daemon
from datakit.nodes.process import RunAs

BINARY = "prometheus-process-exporter"
_OURS = {"processes.yml", "exporter.log"}


def label(props: dict) -> str:
    return f"process-exporter {props['name']} ({_host(props)}:{int(props['port'])})"


def _host(props: dict) -> str:
    return props.get("host") or daemon.HOST


def url(props: dict) -> str:
    return f"http://{_host(props)}:{int(props['port'])}/metrics"


def _marker(props: dict) -> str:
    return f"-web.listen-address={_host(props)}:{int(props['port'])}"


def config(groups: list[dict]) -> str:
    """The exporter's matchers: one process group per node, named for it."""
    names = [{"name": g["name"], "cmdline": [g["cmdline"]]} for g in groups]
    return "# Written by datakit; edits are overwritten.\n" + yaml.safe_dump(
        {"process_names": names}, sort_keys=False)


def start(props: dict) -> dict:
    found = shutil.which(BINARY)
    if not found:
        raise DatakitError(f"{BINARY} not found: apt-get install {BINARY} "
                           "(tools/bootstrap installs it)")
    account = RunAs.service(props.get("run_as") or "prometheus")
    root = account.own(Path(props["dir"]), 0o700)
    conf = root / "processes.yml"
    conf.write_text(config(props["groups"]))
    conf.chmod(0o644)
    # Not per thread and not from smaps: both multiply the work of every scrape.
    argv = [found, _marker(props), f"-config.path={conf}", "-threads=false",
            "-gather-smaps=false"]
    started = daemon.start(what=label(props), argv=argv, marker=_marker(props),
                           account=account, log=root / "exporter.log", cwd=root,
                           ready_url=url(props))
    return {"name": props["name"], "host": _host(props), "port": int(props["port"]),
            "url": url(props), **started}


def running(props: dict, outs: dict | None = None) -> tuple[int, int] | None:
    return daemon.live(_marker(props), outs)


def alive(props: dict, outs: dict | None = None) -> bool:
    return running(props, outs) is not None


def stop(props: dict, outs: dict | None = None) -> None:
    daemon.stop(_marker(props), outs)


def delete(props: dict, outs: dict | None = None) -> None:
    stop(props, outs)
    daemon.remove_dir(Path(props["dir"]), _OURS)
