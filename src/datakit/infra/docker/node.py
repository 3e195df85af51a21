"""The container skeleton every node shares: pinned image, named volume, network, ports,
limits, health check, restart policy, and secrets passed as secret environment.

A service module says only what is its own (command, environment, health probe, where its
data lives); `NodeContainers.container` adds the rest the same way for every node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_docker as docker

from datakit.infra.docker.network import Layout, Placement
from datakit.infra.docker.provider import slug

RESTART = "unless-stopped"  # a drill's `docker stop` stays stopped until it `start`s it
HEALTH_WAIT_S = 300  # `pulumi up` waits this long for a node to report healthy


@dataclass
class NodeSpec:
    """What a service module decides about one node's container."""

    service: str  # the image and resource limits to use: postgres, redis, sentinel, kafka, etcd
    command: list[str]
    health: str | list[str]  # a shell command, or an exec argv (an image without a shell)
    data_path: str | None  # where the named volume is mounted; None = stateless
    env: dict[str, str] = field(default_factory=dict)
    secret_env: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    uploads: dict[str, str] = field(default_factory=dict)  # path -> content (no secrets)
    start_period_s: int = 30
    user: str | None = None
    extra_ports: list[int] = field(default_factory=list)  # published beside the client port
    image: pulumi.Input[str] | None = None  # an image the program built, not a pinned one


def env_list(env: dict[str, str], secret_env: dict[str, pulumi.Input[str]]) -> list:
    """`NAME=value` entries; a secret one is a secret Output, so Pulumi stores the whole
    env list encrypted and shows it as [secret]."""
    out: list = [f"{k}={v}" for k, v in env.items()]
    out += [pulumi.Output.secret(pulumi.Output.concat(f"{k}=", v)) for k, v in secret_env.items()]
    return out


class NodeContainers:
    """Makes a stack's images, volumes and containers; one instance per program."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.topo = layout.topo
        self._images: dict[tuple[str, str], docker.RemoteImage] = {}
        self._built: dict[tuple[str, str], docker.Image] = {}

    def image(self, service: str, docker_host: str | None,
              parent: pulumi.Resource) -> docker.RemoteImage:
        """The stack's pinned image of `service` (sentinels run the Redis image; an images
        field such as `postgres_exporter` names its own) on a host."""
        family = "redis" if service == "sentinel" else service
        ref = getattr(self.topo.docker.images, family)
        key = (ref, docker_host or "")
        if key not in self._images:
            family = family.replace("_", "-")
            suffix = "" if len(self.layout.hosts) == 1 else f"-{slug(docker_host)}"
            self._images[key] = docker.RemoteImage(
                f"image-{family}{suffix}", name=ref, keep_locally=True,
                opts=self.layout.providers.opts(docker_host, parent=parent))
        return self._images[key]

    def built_image(self, name: str, image_name: str, context: Path, args: dict[str, str],
                    docker_host: str | None, parent: pulumi.Resource, *,
                    dockerfile: Path | None = None) -> docker.Image:
        """An image the program builds on a Docker host from `context` (its Dockerfile, or
        `dockerfile`), kept on that host only (no registry is needed or pushed to)."""
        key = (image_name, docker_host or "")
        if key not in self._built:
            suffix = "" if len(self.layout.hosts) == 1 else f"-{slug(docker_host)}"
            self._built[key] = docker.Image(
                f"image-{name}{suffix}", image_name=image_name, skip_push=True,
                build=docker.DockerBuildArgs(context=str(context),
                                             dockerfile=str(dockerfile or context / "Dockerfile"),
                                             args=args),
                opts=self.layout.providers.opts(docker_host, parent=parent))
        return self._built[key]

    def container(self, place: Placement, spec: NodeSpec, parent: pulumi.Resource,
                  depends_on: list[pulumi.Resource] | None = None, *,
                  name: str | None = None, one_shot: bool = False) -> docker.Container:
        """The container of `place` (or a one-shot job named `name` on its host and network)."""
        topo, layout = self.topo, self.layout
        host = place.docker_host
        opts = layout.providers.opts(host, parent=parent, depends_on=depends_on or [])
        container_name = layout.container_name(name) if name else place.container
        labels = [docker.ContainerLabelArgs(label="datakit.stack", value=topo.name),
                  docker.ContainerLabelArgs(label="datakit.node", value=name or place.node.name)]
        args: dict = {
            "name": container_name,
            "image": spec.image or self.image(spec.service, host, parent).image_id,
            "command": spec.command,
            "envs": env_list(spec.env, spec.secret_env),
            "labels": labels,
            "uploads": [docker.ContainerUploadArgs(file=path, content=text, executable=True)
                        for path, text in spec.uploads.items()],
            "user": spec.user,
        }
        network = layout.network(host, parent)
        if network is None:
            args["network_mode"] = "host"
        else:
            args["networks_advanced"] = [docker.ContainerNetworksAdvancedArgs(
                name=network.name, aliases=[container_name])]
            args["hostname"] = container_name
        if one_shot:
            # Runs to completion during `up`; a failure fails the deployment.
            args.update(restart="no", must_run=False, attach=True, logs=True)
            return docker.Container(name, opts=opts, **args)

        node = place.node
        if spec.data_path:
            volume = docker.Volume(
                f"{node.name}-data", name=f"{container_name}-data",
                labels=[docker.VolumeLabelArgs(label="datakit.stack", value=topo.name)],
                opts=layout.providers.opts(host, parent=parent,
                                           retain_on_delete=not topo.disposable))
            args["volumes"] = [docker.ContainerVolumeArgs(volume_name=volume.name,
                                                          container_path=spec.data_path)]
        if network is not None and place.published:
            args["ports"] = [docker.ContainerPortArgs(internal=port, external=port,
                                                      ip=topo.docker.publish_address)
                             for port in (node.port, *spec.extra_ports)]
        limits = topo.docker.resources.get(spec.service)  # type: ignore[call-overload]
        if limits is not None:
            if limits.memory is not None:
                args["memory"] = max(6, int(limits.memory) // 1024**2)  # MB
            if limits.cpus is not None:
                args["cpus"] = f"{limits.cpus:g}"  # NanoCPUs: a hard cap, like --cpus
        test = ["CMD-SHELL", spec.health] if isinstance(spec.health, str) else \
            ["CMD", *spec.health]
        args["healthcheck"] = docker.ContainerHealthcheckArgs(
            tests=test, interval="5s", timeout="5s", retries=6,
            start_period=f"{spec.start_period_s}s", start_interval="1s")
        args.update(restart=RESTART, wait=True, wait_timeout=HEALTH_WAIT_S,
                    destroy_grace_seconds=30, stop_timeout=30)
        return docker.Container(node.name, opts=opts, **args)
