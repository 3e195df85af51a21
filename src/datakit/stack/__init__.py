"""A provisioned stack as the work after provisioning sees it.

`outputs` reads the one outputs schema (endpoints, nodes, secrets), `lifecycle` is the
Automation API facade (up, down, preview, outputs) and `progress` shows a Pulumi run live.
It imports topology (to refuse a broken config before the engine starts), never infra.
"""
