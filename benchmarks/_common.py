"""What several benchmarks share: provenance, shapes, a shared machine.

The benchmarks run as scripts (``python benchmarks/bench_3d.py``), so
this folder is on ``sys.path`` and they ``from _common import ...``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path


def git_commit() -> str:
    """HEAD of the checkout, with '+dirty' if tracked files changed."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(
            ['git', *args], cwd=root, capture_output=True, text=True
        ).stdout.strip()

    dirty = git('status', '--porcelain', '--untracked-files=no')
    return git('rev-parse', '--short', 'HEAD') + ('+dirty' if dirty else '')


def write_json(path: Path, result: dict) -> None:
    """Write ``result`` as JSON, with the commit and the machine's load."""
    result = {
        **result,
        'commit': git_commit(),
        'uptime': os.popen('uptime').read().strip(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + '\n')


def shape_arg(text: str) -> tuple[int, ...]:
    """``'64,512,512'`` as a tuple (an argparse ``type``)."""
    return tuple(int(v) for v in text.split(','))


def cpu_seconds() -> tuple[float, float]:
    """Busy CPU seconds of the whole machine and of this process so far."""
    with open('/proc/stat') as stat:
        ticks = [int(v) for v in stat.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    busy = (sum(ticks) - idle) / os.sysconf('SC_CLK_TCK')
    times = os.times()
    return busy, times.user + times.system


def wait_quiet(limit: float, cores: float = 0.25) -> float:
    """Wait (up to ``limit`` s) until other processes use < ``cores``.

    Returns the seconds waited. Other jobs on a shared 2-core machine
    slow a 2-thread run by 2x or more.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        busy, own = cpu_seconds()
        time.sleep(2.0)
        busy2, own2 = cpu_seconds()
        if (busy2 - busy) - (own2 - own) < 2.0 * cores:
            break
    return time.perf_counter() - start
