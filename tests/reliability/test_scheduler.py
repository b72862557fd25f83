"""A scheduler address that accepts connections but never answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import tifffile

from .conftest import assert_no_complete_output, nuclei


def test_silent_scheduler_is_one_line_and_exit_2_within_seconds(tmp_path):
    server = socket.create_server(('127.0.0.1', 0))
    accepted: list[socket.socket] = []

    def accept() -> None:  # accept, then never write a byte
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:  # closed at the end of the test
                return

    threading.Thread(target=accept, daemon=True).start()
    image = tmp_path / 'in.tif'
    tifffile.imwrite(image, nuclei())
    out = tmp_path / 'out.zarr'
    address = f'tcp://127.0.0.1:{server.getsockname()[1]}'
    started = time.monotonic()
    try:
        done = subprocess.run(
            [
                *(sys.executable, '-m', 'segloop.cli', 'segment'),
                *(str(image), '-o', str(out), '--scheduler', address),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.close()
        for connection in accepted:
            connection.close()
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f'cannot reach the dask scheduler at {address}' in lines[0]
    assert accepted  # it did connect: the handshake is what never came
    # docs/distributed.md: exit 2 within 10 s of waiting (plus start-up)
    assert elapsed < 40
    assert_no_complete_output(out)
