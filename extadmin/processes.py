"""Whether a process of this host still runs: the one rule, for the operations, leases, agents and
unpack folders that record the pid of the process that owns them."""
from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs. A zombie does not: it died, and only waits
    for its parent (or init, when it was orphaned) to reap it, which can take seconds."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): signal 0 is all we know
    return state not in (b"Z", b"X")
