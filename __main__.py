"""The Pulumi program: read the stack's topology, build one component per service."""

from datakit.infra.program import build

build()
