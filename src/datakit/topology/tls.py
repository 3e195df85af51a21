"""The TLS part of a topology: on by default, a CA per stack, a certificate per node.

datakit makes the stack's CA at the first `up` and a certificate for every node, whose SANs
cover the node's addresses. `generation` is the handle to reissue them: raise it and `up`
issues every node a new certificate (the CA stays), which the nodes load in place.

>>> TlsSpec().enabled
True
"""

from __future__ import annotations

from pydantic import Field

from datakit.topology.problems import Problem, Spec


class TlsSpec(Spec):
    """TLS on every link; `enabled: false` only for a disposable stack."""

    enabled: bool = True
    generation: int = Field(1, ge=1)  # raise it to reissue every node certificate
    node_days: int = Field(365, ge=31)  # a node certificate's life; verify warns at 30 days
    ca_days: int = Field(3650, ge=365)

    def problems(self, disposable: bool) -> list[Problem]:
        if self.enabled or disposable:
            return []
        return [Problem("tls.enabled", "false on a stack that is not disposable: every link "
                        "would be plaintext", "true, or datakit:disposable true for a "
                        "throwaway stack")]
