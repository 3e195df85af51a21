"""Remove what a stack's faults left behind: by its record, by chain name and by tag.

`heal_stale(stack)` is what the drills call before a fault run (`Faults` does it on its
own when it starts) and what `down` calls, with `force=True`, before it tears a stack down.
It refuses, without force, while the process that installed the faults is still alive:
that is a drill running, not a stale one.
"""

from __future__ import annotations

from pathlib import Path

from datakit.nodes.faults import delayer, rules, state
from datakit.nodes.faults.addresses import FaultError


class FaultsInUse(FaultError):
    """A live process holds the stack's faults; the message names it."""


def heal_stale(stack: str, *, force: bool = False,
               state_dir: Path = state.STATE_DIR) -> list[str]:
    """Remove every datakit rule and delay process of `stack`; return one line per item.

    Found three ways, so a `kill -9` at any moment leaves nothing the next run misses: the
    state file's record (chain and delayers, whatever their names), the chain name this
    version gives the stack, and the `datakit:<stack>` tag on the jump.
    """
    with state.locked(state_dir):
        return heal_unlocked(stack, force=force, state_dir=state_dir)


def heal_unlocked(stack: str, *, force: bool, state_dir: Path) -> list[str]:
    record = state.load(stack, state_dir)
    if record and record.owner_alive() and not record.mine() and not force:
        raise FaultsInUse(
            f"stack {stack}: network faults are held by live process {record.owner_pid} "
            f"({', '.join(record.faults) or 'no fault yet'}); let it finish, stop it, or "
            f"remove them with heal_stale({stack!r}, force=True) as `down` does"
        )
    chains = {rules.chain_name(stack)} | ({record.chain} if record else set())
    removed = rules.remove(stack, chains)  # rules first: no packet is queued after this
    known = [(d.pid, d.start_time) for d in record.delayers] if record else []
    for pid, started in dict.fromkeys(known + delayer.strays(stack)):
        if delayer.stop(pid, started):
            removed.append(f"delay process {pid}")
    state.forget(stack, state_dir)
    return removed
