"""Network faults between loopback addresses: partitions, latency and loss, and heal.

Free of Pulumi; used by the drills and `datakit load --fault`. Each stack owns one
iptables chain (`DATAKIT-<stack>`, jumped to from the top of INPUT); latency is a delay
process fed by the kernel's packet queue (see delayer.py for why not tc netem).

    >>> with Faults("local") as faults:
    ...     faults.partition({"127.0.10.1"}, {"127.0.10.2"}, one_way=True)
    >>> heal_stale("local")      # before a fault run; `down` passes force=True

- addresses.py: the 127.0.0.0/8-only rule
- rules.py: the chain, its jump, DROP / statistic / NFQUEUE rules, the sweep
- delayer.py, nfqueue.py: the delay process and the netlink protocol it speaks
- state.py: the record of what is installed, for a run killed with kill -9
- injector.py: `Faults`; sweep.py: `heal_stale`
"""

from datakit.nodes.faults.addresses import FaultError, NotLoopback
from datakit.nodes.faults.injector import Faults
from datakit.nodes.faults.rules import chain_name
from datakit.nodes.faults.sweep import FaultsInUse, heal_stale

__all__ = ["FaultError", "Faults", "FaultsInUse", "NotLoopback", "chain_name", "heal_stale"]
