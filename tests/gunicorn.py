"""The project's gunicorn as the tests run it: `gunicorn -c gunicorn.conf.py
tracker.wsgi` in a process group of its own (its workers die with it), its
output in a file (a pipe could fill up and stall it)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """A `ready` test: the port accepts connections."""

    def ready():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    return ready


@contextlib.contextmanager
def serving(env, log_path, ready, start_timeout=30):
    """Run gunicorn with `env` until the block ends; enter once ready() is true,
    fail the test with the log's end if it dies or is not ready in time."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [GUNICORN, "-c", "gunicorn.conf.py", "tracker.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + start_timeout
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                output = Path(log_path).read_text(errors="replace")
                pytest.fail(f"gunicorn did not start: {output[-2000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
