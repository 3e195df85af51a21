"""The metrics toolchain: Debian's Prometheus and exporters, and the JMX exporter javaagent
pinned in tools/versions.env, as tools/bootstrap installs them and `datakit doctor` reports."""

from __future__ import annotations

import hashlib
import zipfile

from datakit.paths import cache_dir
from datakit.toolchain.doctor import checks
from datakit.toolchain.versions import jmx_exporter_version, pinned

TOOLS = ("prometheus", "promtool", "prometheus-postgres-exporter", "prometheus-redis-exporter")


def _jar():
    return cache_dir() / f"jmx-exporter-{jmx_exporter_version()}" / "jmx_prometheus_javaagent.jar"


def test_doctor_reports_prometheus_the_exporters_and_the_javaagent():
    found = {c.name: c for c in checks()}
    for tool in TOOLS:
        assert found[tool].ok, found[tool]
        assert found[tool].version[0].isdigit(), found[tool]
    assert found["prometheus"].version.startswith("2.")  # bookworm's 2.42: rule syntax of 2.x
    agent = found["jmx_prometheus_javaagent"]
    assert agent.ok and agent.version == jmx_exporter_version(), agent
    assert "system user prometheus" in found


def test_the_cached_javaagent_is_the_pinned_jar():
    jar = _jar()
    assert hashlib.sha256(jar.read_bytes()).hexdigest() == pinned()["JMX_EXPORTER_SHA256"]
    manifest = zipfile.ZipFile(jar).read("META-INF/MANIFEST.MF").decode()
    assert "Premain-Class: io.prometheus.jmx.JavaAgent" in manifest
    assert f"Implementation-Version: {jmx_exporter_version()}" in manifest
