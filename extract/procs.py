"""Child processes that die with their parent (sweep workers, extract's DataLoader workers),
and a look at a process group (tests and bench/faults.py check that none outlives a kill).

A process killed by SIGKILL cannot tell its children to stop, so each child watches for
itself: the kernel's parent-death signal on Linux (prctl PR_SET_PDEATHSIG), and everywhere
a daemon thread that notices the parent pid change (an orphan is re-parented to init or a
subreaper).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int, poll: float = 0.5, pdeathsig: bool = True) -> None:
    """Make this process exit when `parent` dies, even by SIGKILL (which the parent cannot
    forward): the kernel's parent-death signal on Linux, and everywhere a daemon thread that
    notices the parent pid change (the orphan is re-parented to init or a subreaper)."""
    if pdeathsig and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no usable libc: the watchdog still covers it
            pass
    if os.getppid() != parent:  # the parent died before prctl: no signal will come
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent, poll), name="parent-watchdog", daemon=True).start()


def _watch_parent(parent: int, poll: float) -> None:
    while True:
        time.sleep(poll)
        if os.getppid() != parent:
            os._exit(1)  # no cleanup: temp files and folders are removed by the next run


class DieWithParent:
    """DataLoader `worker_init_fn` (picklable): the worker exits when `parent` dies."""

    def __init__(self, parent: int) -> None:
        self.parent = parent

    def __call__(self, worker_id: int) -> None:
        die_with_parent(self.parent)


def process_group(pgid: int) -> dict[int, tuple[int, str]]:
    """Live (not zombie) processes of process group `pgid`, read from /proc (Linux):
    pid -> (parent pid, command line)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # exited meanwhile
            continue
        state, ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]  # the command name may contain ")"
        if int(pgrp) == pgid and state not in ("Z", "X"):
            out[int(d)] = (int(ppid), cmd)
    return out
