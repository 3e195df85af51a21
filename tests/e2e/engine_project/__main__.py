import pulumi

from datakit.toolchain.probe_resource import ProbeFile

config = pulumi.Config()
probe = ProbeFile("probe", path=config.require("path"), content=config.require("content"))
pulumi.export("size", probe.size)
