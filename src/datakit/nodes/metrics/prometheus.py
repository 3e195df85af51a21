"""A Prometheus server for one stack: its config (scrape interval, targets grouped by job,
a rules file), start as its service user, readiness, reload, stop, and removal.

Debian's `prometheus` binary, run by datakit with its own config, data dir and port (the
packaged service is kept off by tools/bootstrap). The config is checked with `promtool
check config` before a start or reload, so a bad target list or rule is one line naming
the file, not a server that exits.

props keys: name, port, host (default 127.0.0.1), dir (the server's own dir: config, rules,
data, log; removed on delete), scrape_interval_s (default 1), evaluation_interval_s
(default: the scrape interval), retention (a Prometheus duration such as "3h", or
seconds; default "3h"), targets ({job: [{address: "host:port", labels: {...}}]}), rules
(rule-file YAML text, e.g. from rules.render; optional), external_labels (e.g.
{stack: local}), run_as (default "prometheus", the account Debian's package makes).
outs keys: name, host, port, url, pid, start_time, config, rules, data_dir, log_path,
start_s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import yaml

from datakit.errors import DatakitError
from datakit.nodes import process, tls
from datakit.nodes.metrics import daemon
from datakit.nodes.process import RunAs
from datakit.topology.units import is_prometheus_duration

BINARY, PROMTOOL = "prometheus", "promtool"
_OURS = {"prometheus.yml", "rules.yml", "data", "prometheus.log", "tls"}
# The jobs whose targets serve /metrics over TLS when the stack's links do (Patroni's REST
# API and etcd's client port want a client certificate too); the exporters serve HTTP.
TLS_JOBS = ("patroni", "etcd")


def label(props: dict) -> str:
    return f"prometheus {props['name']} ({_host(props)}:{int(props['port'])})"


def _host(props: dict) -> str:
    return props.get("host") or daemon.HOST


def url(props: dict) -> str:
    return f"http://{_host(props)}:{int(props['port'])}"


def _paths(props: dict) -> tuple[Path, Path, Path, Path, Path]:
    """(server dir, prometheus.yml, rules.yml, data dir, log)."""
    root = Path(props["dir"])
    return (root, root / "prometheus.yml", root / "rules.yml", root / "data",
            root / "prometheus.log")


def _marker(props: dict) -> str:
    return f"--config.file={_paths(props)[1]}"


def duration(value: float | str, what: str = "duration") -> str:
    """A Prometheus duration: "3h" as given, 1 -> "1s", 0.5 -> "500ms"."""
    if isinstance(value, str):
        if not is_prometheus_duration(value):
            raise DatakitError(f"{what} {value!r} is not a Prometheus duration: "
                               "write it as 500ms, 1s, 5m, 3h or 2d")
        return value
    ms = round(float(value) * 1000)
    if ms <= 0:
        raise DatakitError(f"{what} must be above 0, not {value!r}")
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def render_config(*, targets: dict[str, list[dict]], scrape_interval_s: float | str = 1,
                  evaluation_interval_s: float | str | None = None,
                  job_intervals: dict[str, float] | None = None,
                  tls_files: dict[str, str] | None = None,
                  rules_file: str | None = None,
                  external_labels: dict[str, str] | None = None) -> str:
    """prometheus.yml: one scrape job per key of `targets`, one static config per target
    so each keeps its own labels (e.g. the node's name, for legends and alerts)."""
    interval = duration(scrape_interval_s, "scrape interval")
    config: dict = {"global": {
        "scrape_interval": interval,
        # at most the interval (Prometheus's rule): a hung target is one missed scrape
        "scrape_timeout": interval,
        "evaluation_interval": duration(evaluation_interval_s or scrape_interval_s,
                                        "evaluation interval"),
    }}
    if external_labels:
        config["global"]["external_labels"] = dict(external_labels)
    if rules_file:
        config["rule_files"] = [rules_file]
    config["scrape_configs"] = [
        {"job_name": job, **_job_interval((job_intervals or {}).get(job)),
         **(_tls(tls_files) if tls_files and job in TLS_JOBS else {}), "static_configs": [
            {"targets": [t["address"]], "labels": dict(t.get("labels") or {})}
            for t in members]}
        for job, members in targets.items()]
    return "# Written by datakit; edits are overwritten.\n" + yaml.safe_dump(
        config, sort_keys=False)


def _tls(files: dict[str, str]) -> dict:
    return {"scheme": "https", "tls_config": {
        "ca_file": files["ca"], "cert_file": files["cert"], "key_file": files["key"]}}


def _job_interval(seconds: float | None) -> dict:
    """A job's own interval (and timeout, the same), where it differs from the global."""
    if not seconds:
        return {}
    return {"scrape_interval": duration(seconds), "scrape_timeout": duration(seconds)}


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise DatakitError(f"{name} not found: apt-get install prometheus "
                           "(tools/bootstrap installs it)")
    return found


def _write(props: dict, account: RunAs) -> None:
    """Write the config and rules files, and have promtool check them together."""
    root, conf, rules, _, _ = _paths(props)
    account.own(root, 0o700)
    files = tls.write({"tls": props.get("tls"), "data_dir": str(root)}, account)
    if props.get("rules"):
        _put(rules, props["rules"], account)
    else:
        rules.unlink(missing_ok=True)
    text = render_config(targets=props.get("targets") or {},
                         scrape_interval_s=props.get("scrape_interval_s") or 1,
                         evaluation_interval_s=props.get("evaluation_interval_s"),
                         rules_file=str(rules) if props.get("rules") else None,
                         job_intervals=props.get("job_intervals"), tls_files=files,
                         external_labels=props.get("external_labels"))
    _put(conf, text, account)
    check = subprocess.run([_tool(PROMTOOL), "check", "config", str(conf)],
                           capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        said = [line.strip() for line in (check.stderr + check.stdout).splitlines()
                if "FAILED" in line or "error" in line.lower()]
        raise DatakitError(f"{label(props)}: promtool refuses {conf}: "
                           f"{' | '.join(said[-3:]) or check.returncode}; fix the targets "
                           "or rules given to it")


def _put(path: Path, text: str, account: RunAs) -> None:
    """Replace `path` whole: the server may read it at any time (a reload)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.chown(tmp, account.uid, account.gid)
    tmp.replace(path)


def _outs(props: dict, started: dict) -> dict:
    _, conf, rules, data, _ = _paths(props)
    return {"name": props["name"], "host": _host(props), "port": int(props["port"]),
            "url": url(props), "config": str(conf),
            "rules": str(rules) if props.get("rules") else None, "data_dir": str(data),
            **started}


def start(props: dict, *, timeout: float = daemon.START_TIMEOUT) -> dict:
    """Write and check the config, start the server (if it does not run already) and wait
    until it is ready (`/-/ready`: its storage is open and it scrapes)."""
    account = RunAs.service(props.get("run_as") or "prometheus")
    if not daemon.live(_marker(props)):
        process.require_free(int(props["port"]), label(props), _host(props))
    _write(props, account)
    root, conf, _, data, log = _paths(props)
    account.own(data, 0o700)
    retention = duration(props.get("retention") or "3h", "retention")
    argv = [_tool(BINARY), _marker(props), f"--storage.tsdb.path={data}",
            f"--storage.tsdb.retention.time={retention}",
            f"--web.listen-address={_host(props)}:{int(props['port'])}",
            "--web.enable-lifecycle",  # POST /-/reload after a target list changes
            "--log.level=warn"]
    started = daemon.start(what=label(props), argv=argv, marker=_marker(props),
                           account=account, log=log, cwd=root, timeout=timeout,
                           ready_url=f"{url(props)}/-/ready")
    return _outs(props, started)


def reload(props: dict, outs: dict | None = None) -> dict:
    """Rewrite and check the config (new targets, rules or interval), then have the
    running server read it again; it keeps its data and its port."""
    account = RunAs.service(props.get("run_as") or "prometheus")
    _write(props, account)
    request = urllib.request.Request(f"{url(props)}/-/reload", data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            reply.read()
    except OSError as exc:
        raise DatakitError(f"{label(props)} did not reload: {getattr(exc, 'reason', exc)}; "
                           f"see {_paths(props)[4]}") from None
    running = daemon.live(_marker(props), outs) or (None, None)
    return _outs(props, {"pid": running[0], "start_time": running[1],
                         "log_path": str(_paths(props)[4])})


def ready(props: dict) -> bool:
    try:
        return daemon.get(f"{url(props)}/-/ready", timeout=2.0)[0] == 200
    except OSError:
        return False


def stop(props: dict, outs: dict | None = None) -> None:
    """SIGTERM: the server closes its head block cleanly (SIGKILL after 20 s)."""
    if running := daemon.live(_marker(props), outs):
        process.stop(*running, timeout=20)


def running(props: dict, outs: dict | None = None) -> tuple[int, int] | None:
    """(pid, start time) of the server, or None."""
    return daemon.live(_marker(props), outs)


def alive(props: dict, outs: dict | None = None) -> bool:
    return running(props, outs) is not None


def delete(props: dict, outs: dict | None = None) -> None:
    """Stop the server and remove its dir, if it holds only what datakit put there."""
    stop(props, outs)
    daemon.remove_dir(_paths(props)[0], _OURS | {"prometheus.yml.tmp", "rules.yml.tmp"})
