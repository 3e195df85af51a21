"""Docker-only settings: images, Docker host(s), resource limits, published ports.

The local substrate ignores them; they are validated on every stack anyway, so a typo in
prod's config fails on a laptop too.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from datakit.topology.problems import Spec
from datakit.topology.units import Size, invalid

# The services with containers of their own: limits and published ports are per service
# (`exporter` covers postgres_exporter and redis_exporter alike).
DockerService = Literal["postgres", "redis", "sentinel", "kafka", "etcd", "exporter",
                        "prometheus"]
HOST_SCHEMES = ("unix://", "tcp://", "ssh://", "npipe://")
HOST_ALLOWED = "a DOCKER_HOST URL: unix:///var/run/docker.sock, tcp://HOST:2376, ssh://USER@HOST"
IMAGE_ALLOWED = (
    "an exact tag (postgres:15.8, redis:7.0.15, apache/kafka:4.1.1, quay.io/coreos/etcd:v3.6.5)"
    " or a @sha256: digest"
)
_EXACT_TAG = re.compile(r"^[\w./-]+(:v?\d+\.\d+[\w.-]*)?(@sha256:[0-9a-f]{64})?$")


def _docker_host(value: str) -> str:
    if not isinstance(value, str) or not value.startswith(HOST_SCHEMES) or value.endswith("//"):
        raise invalid(f"bad Docker host {value!r}", HOST_ALLOWED)
    return value


class Images(Spec):
    """The image of each service, pinned to an exact tag or a digest."""

    postgres: str = Field("postgres:15.8", description="The base of the PostgreSQL image "
                          "the program builds: this image plus Patroni from PyPI.")
    redis: str = Field("redis:7.0.15", description="Redis and the Sentinels.")
    kafka: str = Field("apache/kafka:4.1.1", description="Kafka.")
    # Distroless: no shell, so its health check is exec form.
    etcd: str = Field("quay.io/coreos/etcd:v3.7.3", description="etcd's own release "
                      "image, the version tools/versions.env builds locally.")
    # Images with a shell (busybox, alpine): their health checks fetch their own pages with
    # wget, and redis_exporter's plain tag is scratch.
    postgres_exporter: str = Field("quay.io/prometheuscommunity/postgres-exporter:v0.15.0",
                                   description="postgres_exporter, beside each PostgreSQL "
                                   "node (metrics.enabled).")
    redis_exporter: str = Field("oliver006/redis_exporter:v1.62.0-alpine",
                                description="redis_exporter, beside each Redis node and "
                                "Sentinel.")
    prometheus: str = Field("prom/prometheus:v2.53.2", description="Prometheus (the 2.53 "
                            "LTS line).")

    @field_validator("postgres", "redis", "kafka", "etcd", "postgres_exporter",
                     "redis_exporter", "prometheus")
    @classmethod
    def _exact(cls, value: str) -> str:
        match = _EXACT_TAG.match(value)
        if not match or not (match.group(1) or match.group(2)):
            raise invalid(f"image {value!r} is not pinned", IMAGE_ALLOWED)
        return value

    def tag(self, service: str) -> str | None:
        """The tag of a service's image ("15.8", "v3.6.5"), or None for a digest-only one."""
        match = _EXACT_TAG.match(getattr(self, service))
        return match.group(1)[1:] if match and match.group(1) else None


class Resources(Spec):
    """Limits of each container of a service."""

    cpus: float | None = Field(None, gt=0, description="CPUs each container may use.")
    memory: Annotated[Size, Field(gt=0)] | None = Field(None, description="Memory each "
                                                        "container may use.")


class DockerSpec(Spec):
    """Where and how the docker substrate runs the containers."""

    images: Images = Field(Images(), description="The image of each service.")
    host: str | None = Field(None, description="The Docker host of every node (a DOCKER_HOST "
                             "URL: unix://, tcp://, ssh://); default $DOCKER_HOST.")
    node_hosts: dict[str, str] = Field({}, description="A node's own Docker host, by node "
                                       "name (pg-2: ssh://deploy@data-2).")
    resources: dict[DockerService, Resources] = Field({}, description="Limits of each "
                                                      "container, by service.")
    publish: list[DockerService] = Field([], description="Services whose ports are "
                                         "published on the Docker host.")
    publish_address: str = Field("127.0.0.1", description="The host address published "
                                 "ports bind to.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else _docker_host(value)

    @field_validator("node_hosts")
    @classmethod
    def _node_hosts(cls, value: dict[str, str]) -> dict[str, str]:
        for host in value.values():
            _docker_host(host)
        return value

    def host_of(self, node: str) -> str | None:
        """The Docker host a node runs on: its own, else the stack's, else DOCKER_HOST."""
        return self.node_hosts.get(node, self.host)
