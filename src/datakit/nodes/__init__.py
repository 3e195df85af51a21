"""Everything that talks to a running node, free of Pulumi.

Processes, config rendering, server clients, role detection, readiness probes and the
WAL archive: the work after provisioning (drills, status, verify checks, migrations)
imports these, and the Pulumi resources in `datakit.infra` call into them.
"""
