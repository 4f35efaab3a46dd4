"""Child processes of the local cluster: started in their own process group,
always cleaned up (at exit, on SIGTERM/SIGHUP), waited for with deadlines.

Shared by the etcd launcher and the Kubernetes control plane.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TypeVar

T = TypeVar("T")


class StartError(RuntimeError):
    """A component did not come up; the message holds the tail of its log."""


# ---------------------------------------------------------------- cleanup


_cleanups: list[Callable[[], None]] = []
_cleanup_lock = threading.Lock()


def _run_cleanups() -> None:
    while True:
        with _cleanup_lock:
            if not _cleanups:
                return
            fn = _cleanups.pop()
        with contextlib.suppress(Exception):
            fn()


def register_cleanup(fn: Callable[[], None]) -> Callable[[], None]:
    """Run ``fn`` at interpreter exit unless :func:`unregister_cleanup` ran first."""
    with _cleanup_lock:
        _cleanups.append(fn)
    return fn


def unregister_cleanup(fn: Callable[[], None]) -> None:
    with _cleanup_lock, contextlib.suppress(ValueError):
        _cleanups.remove(fn)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds finally blocks and fixture teardowns, then atexit runs.
    raise SystemExit(128 + signum)


def install_signal_handlers() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit (their default kills Python
    without running atexit, which would orphan the control plane)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, _exit_on_signal)


atexit.register(_run_cleanups)


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """One component, in its own process group so that stopping it also stops
    anything it spawned."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._cleanup = register_cleanup(self.stop)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, what: str) -> StartError:
        state = "running" if self.alive() else f"exited with {self.popen.returncode}"
        return StartError(f"{self.name} {what} ({state}); last lines of {self.log}:\n{self.tail()}")

    def stop(self, grace: float = 10.0) -> None:
        unregister_cleanup(self._cleanup)
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        # The group may outlive its leader; make sure nothing of it is left.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    proc: Process | None = None,
    interval: float = 0.2,
) -> T:
    """Poll ``check`` until it returns a value that is not None/False; fail
    early when ``proc`` dies, with its log tail, instead of waiting out the
    deadline."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
            if result is not None and result is not False:
                return result
        except Exception as exc:  # the component is still coming up
            last_error = exc
        if proc is not None and not proc.alive():
            raise proc.failure(f"died while waiting for {what}")
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            if proc is not None:
                raise proc.failure(f"not ready after {timeout:.0f} s waiting for {what}{detail}")
            raise StartError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)
