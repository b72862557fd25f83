"""The widget's helper process never re-runs the user's script.

A napari script without an ``if __name__ == '__main__':`` guard is what
most users write. With plain ``spawn`` the helper imported that script
again (a second viewer), and the helper's own attempt to start a process
while bootstrapping broke the pool, so the first run never finished.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT_WITHOUT_MAIN_GUARD = textwrap.dedent(
    """
    import os
    import sys

    from segloop.widgets.runner import instance_pool

    with open(sys.argv[1], 'a') as runs:
        runs.write(f'{os.getpid()}\\n')
    helper_pid = instance_pool().submit(os.getpid).result(timeout=120)
    print('helper', helper_pid, 'parent', os.getpid())
    """
)


def test_helper_process_does_not_import_the_users_script(tmp_path: Path):
    script = tmp_path / 'napari_script.py'
    script.write_text(SCRIPT_WITHOUT_MAIN_GUARD)
    runs = tmp_path / 'runs.txt'
    done = subprocess.run(
        [sys.executable, str(script), str(runs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    words = done.stdout.split()
    helper_pid, parent_pid = int(words[1]), int(words[3])
    assert helper_pid != parent_pid
    # the script ran once: in its own process, never in the helper's
    assert runs.read_text().split() == [str(parent_pid)]
