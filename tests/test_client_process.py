"""Process-level behaviour: Ctrl-C in a blocked recv(), interpreter exit with a live client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from client_support import simulators

_SCRIPT_PREFIX = """
import sys
import pylazer_sync as pl
client = pl.LazerClient("t", endpoints=[sys.argv[1]], num_connections=2, timeout=2.0).start()
"""


def _run(script: str, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT_PREFIX + textwrap.dedent(script), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ctrl_c_interrupts_a_blocked_recv() -> None:
    script = """
    import threading, time

    main = threading.main_thread().ident

    def announce_when_blocked():
        # "ready" only once the main thread is really waiting inside recv().
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            frame = sys._current_frames().get(main)
            names = []
            while frame is not None:
                names.append(frame.f_code.co_name)
                frame = frame.f_back
            if "_wait_for_items" in names:
                print("ready", flush=True)
                return
            time.sleep(0.01)

    threading.Thread(target=announce_when_blocked, daemon=True).start()
    try:
        client.recv()  # nothing subscribed: blocks until interrupted
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    client.close()
    print("closed", flush=True)
    """
    with simulators(1) as sims:
        proc = _run(script, sims[0].url)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            os.kill(proc.pid, signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert out.split() == ["interrupted", "closed"]


def test_interpreter_exit_with_an_open_client_does_not_hang() -> None:
    script = """
    client.subscribe(price_feed_ids=[1], properties=["price"], channel="fixed_rate@50ms")
    client.recv(timeout=10)
    print("leaving without close()", flush=True)
    """
    with simulators(1) as sims:
        proc = _run(script, sims[0].url)
        try:
            out, err = proc.communicate(timeout=30)  # a hang would hit this timeout
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert "leaving without close()" in out
        # The simulator sees the connections go away when the process ends.
        sims[0].wait_for_connections(0, timeout=10)
