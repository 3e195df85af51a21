"""The pinned toolchain versions, read from tools/versions.env (the bootstrap's source too)."""

from __future__ import annotations

from functools import cache

from datakit.paths import PROJECT_DIR


@cache
def pinned() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (PROJECT_DIR / "tools" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    return values


def pulumi_version() -> str:
    return pinned()["PULUMI_VERSION"]


def kafka_version() -> str:
    return pinned()["KAFKA_VERSION"]


def etcd_version() -> str:
    return pinned()["ETCD_VERSION"]


def patroni_version() -> str:
    return pinned()["PATRONI_VERSION"]


def jmx_exporter_version() -> str:
    return pinned()["JMX_EXPORTER_VERSION"]


def jmx_exporter_sha256() -> str:
    """The digest tools/build-jmx-exporter checks the cached jar against."""
    return pinned()["JMX_EXPORTER_SHA256"]
