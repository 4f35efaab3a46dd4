"""The README's first command works: one cycle of the demo, end to end."""

from __future__ import annotations

import subprocess
import sys
from typing import Any


def test_demo_runs_one_cycle(tools: Any) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "kitex_devcluster", "demo", "--cycles", "1",
         "--pause", "0"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for replicas in (3, 5, 2, 4, 1):
        assert f"{replicas} ready pod(s) -> a Kitex client resolves {replicas} instance(s)" in out
    assert "demo finished" in out
