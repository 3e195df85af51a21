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

    enabled: bool = Field(True, description="TLS on every link; false is accepted on a "
                          "disposable stack only, and `up` then warns.")
    generation: int = Field(1, ge=1, description="Raise it to reissue every node "
                            "certificate; the nodes load theirs in place or roll one by one.")
    node_days: int = Field(365, ge=31, description="A node certificate's life in days; "
                           "verify warns 30 days before it ends.")
    ca_days: int = Field(3650, ge=365, description="The stack CA's life in days.")

    def problems(self, disposable: bool) -> list[Problem]:
        if self.enabled or disposable:
            return []
        return [Problem("tls.enabled", "false on a stack that is not disposable: every link "
                        "would be plaintext", "true, or datakit:disposable true for a "
                        "throwaway stack")]
