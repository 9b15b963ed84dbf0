"""The saved arrays' writer (index/search/npz_file.py): what a killed writer left behind is
removed by the next write, what a running one is writing is not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from index.search.npz_file import read_meta, write_atomically


def test_a_write_removes_only_the_leftovers_of_processes_gone(tmp_path: Path) -> None:
    final = tmp_path / "memory-copy.npz"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = tmp_path / f"{final.name}.{gone.stdout.strip()}.tmp"
    dead.write_bytes(b"half a snapshot")
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = tmp_path / f"{final.name}.{running.pid}.tmp"
        alive.write_bytes(b"being written")
        other = tmp_path / "word-vectors.npz.12345678.tmp"  # another file's: not looked at
        other.write_bytes(b"x")
        write_atomically(final, {"stamp": 1}, {"a": np.arange(3)})
        assert not dead.exists()
        assert alive.exists() and other.exists()
        with np.load(final) as z:
            assert read_meta(z) == {"stamp": 1}
            assert z["a"].tolist() == [0, 1, 2]
    finally:
        running.kill()
        running.wait()
