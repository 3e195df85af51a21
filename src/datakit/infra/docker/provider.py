"""One pulumi-docker provider per Docker host, so a node may name its own host.

A node's host is `docker.node_hosts[name]`, else `docker.host`, else none: the default
provider, which honours `DOCKER_HOST` (and the local socket) like the docker CLI does.
`ssh://USER@HOST` works as it does for the CLI: the deploying machine's ssh config and agent.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pulumi
import pulumi_docker as docker


def host_name(url: str | None) -> str | None:
    """The machine a Docker host URL names (`ssh://deploy@data-1` -> `data-1`); None for the
    local engine (no URL, unix:// or npipe://)."""
    if not url or url.startswith(("unix://", "npipe://")):
        return None
    return urlsplit(url).hostname


def slug(url: str | None) -> str:
    """A resource-name-safe label of a Docker host: `default`, `deploy-data-1-prod-internal`."""
    if not url:
        return "default"
    return re.sub(r"[^A-Za-z0-9]+", "-", url.split("://", 1)[1]).strip("-").lower()


class Providers:
    """The providers of a stack, made once per Docker host on first use."""

    def __init__(self) -> None:
        self._made: dict[str, docker.Provider] = {}

    def for_host(self, url: str | None) -> docker.Provider | None:
        if url is None:
            return None
        if url not in self._made:
            # ssh: fail fast on an unknown host key instead of hanging on a prompt.
            ssh_opts = ["-o", "BatchMode=yes"] if url.startswith("ssh://") else None
            self._made[url] = docker.Provider(f"docker-{slug(url)}", host=url, ssh_opts=ssh_opts)
        return self._made[url]

    def opts(self, url: str | None, **kwargs) -> pulumi.ResourceOptions:
        """ResourceOptions placing a resource on the Docker host `url`."""
        return pulumi.ResourceOptions(provider=self.for_host(url), **kwargs)
