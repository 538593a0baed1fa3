"""What the benchmarks read about the processes they start, from /proc: a process tree's CPU
time, waiting until it is idle, and a free port to start it on."""

import os
import socket
import time
from pathlib import Path


def tree_pids(pid: int) -> list[int]:
    """`pid` and all its descendants (children, their children, …)."""
    pids, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        pids.append(current)
        children = Path(f"/proc/{current}/task/{current}/children")
        if children.exists():
            frontier += [int(child) for child in children.read_text().split()]
    return pids


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by `pid` and its descendants (pool processes included)."""
    total = 0
    for each in tree_pids(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(pid: int, timeout: float = 300) -> None:
    """Until the process tree uses under 5% of a core over 2 s: its start-up is over."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = tree_cpu_s(pid)
        time.sleep(2)
        if tree_cpu_s(pid) - before < 0.1:
            return


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
