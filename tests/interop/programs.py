"""Build and run the Go interop programs of ``tests/interop`` from Python.

The programs are real Kitex (and Hertz) code using kitex-contrib/registry-etcd
and hertz-contrib/registry/etcd, pinned in ``go.mod``/``go.sum`` beside this file:

- ``echo-server``: a Kitex server answering Echo with its ID; optionally
  self-registers with registry-etcd.
- ``echo-client``: a Kitex client resolving through registry-etcd; one JSON
  line per call.
- ``resolve`` / ``hertz-resolve``: what the Go resolvers return.
- ``go-register``: registers instances the Go library's own way.

:func:`ensure_built` builds them once into a cache directory keyed by a hash of
the module's sources; :class:`Launcher` starts them (each in its own process
group), parses their JSON-lines output and stops them all at teardown.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitex_etcd_operator.model import Instance, go_tags

MODULE_DIR = Path(__file__).resolve().parent
PROGRAMS = ("echo-server", "echo-client", "resolve", "hertz-resolve", "go-register")
# Versions pinned in go.mod; kept here for reports and docs (a test checks they match).
KITEX_VERSION = "v0.16.3"
REGISTRY_ETCD_VERSION = "v0.2.6"
HERTZ_VERSION = "v0.10.4"
HERTZ_REGISTRY_ETCD_VERSION = "v0.0.0-20221226122036-3c451682dc72"

BUILD_TIMEOUT = 1800.0
START_TIMEOUT = 30.0
STOP_GRACE = 10.0

Progress = Callable[[str], None]
Json = dict[str, Any]


def _stderr(line: str) -> None:
    print(f"[interop build] {line}", file=sys.stderr, flush=True)


class BuildError(RuntimeError):
    """``go build`` of the interop programs failed; the message has the log's tail."""


class ProgramError(RuntimeError):
    """A program exited or printed something other than what was awaited."""


# ---------------------------------------------------------------- build


def _source_files() -> list[Path]:
    files = [MODULE_DIR / "go.mod", MODULE_DIR / "go.sum"]
    for pattern in ("**/*.go", "**/*.thrift"):
        files += MODULE_DIR.glob(pattern)
    return sorted(set(files))


def source_hash() -> str:
    """SHA-256 over go.mod, go.sum and every .go/.thrift file (path and content)."""
    h = hashlib.sha256()
    for path in _source_files():
        h.update(path.relative_to(MODULE_DIR).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    h.update(os.uname().machine.encode())
    return h.hexdigest()


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/kitex-etcd-operator/interop-<hash>`` (default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kitex-etcd-operator" / f"interop-{source_hash()[:16]}"


def _built(bindir: Path) -> bool:
    return (bindir / ".stamp").exists() and all(
        os.access(bindir / name, os.X_OK) for name in PROGRAMS
    )


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")  # no other toolchain can be downloaded here
    env["GOFLAGS"] = "-buildvcs=false -mod=readonly"
    return env


def ensure_built(progress: Progress = _stderr) -> Path:
    """Directory holding the five programs, building them if needed.

    Cached by source hash; a file lock makes concurrent callers (xdist
    workers, make and a test at once) wait for one build instead of running two.
    """
    root = cache_dir()
    bindir = root / "bin"
    if _built(bindir):
        return bindir
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another process building into {root} ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _built(bindir):
                return bindir
            if shutil.which("go") is None:
                raise BuildError("the Go toolchain ('go') is not on PATH")
            log = root / "build.log"
            staging = root / "bin.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            cmd = ["go", "build", "-o", str(staging) + "/", "./cmd/..."]
            progress(f"building the Kitex interop programs into {bindir} (log: {log})")
            started = time.monotonic()
            with log.open("w") as out:
                out.write(f"$ {' '.join(cmd)}\n")
                out.flush()
                try:
                    rc = subprocess.run(
                        cmd,
                        cwd=MODULE_DIR,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=_go_env(),
                        timeout=BUILD_TIMEOUT,
                    ).returncode
                except subprocess.TimeoutExpired:
                    rc = -1
            if rc != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
                raise BuildError(f"go build failed (exit {rc}); last lines of {log}:\n{tail}")
            missing = [p for p in PROGRAMS if not (staging / p).exists()]
            if missing:
                raise BuildError(f"go build produced no {', '.join(missing)}")
            seconds = time.monotonic() - started
            (staging / ".stamp").write_text(
                json.dumps({"hash": source_hash(), "seconds": round(seconds, 1)})
            )
            shutil.rmtree(bindir, ignore_errors=True)
            staging.rename(bindir)
            progress(f"built in {seconds:.0f} s")
            return bindir
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# ---------------------------------------------------------------- parsed output


def instance_from_json(obj: Mapping[str, Any]) -> Instance:
    """One instance as a Go resolver returned it; a nil tags map (``null``) stays ``None``."""
    return Instance(
        network=str(obj["network"]),
        address=str(obj["address"]),
        weight=int(obj["weight"]),
        tags=go_tags(obj.get("tags")),
    )


@dataclass(frozen=True)
class ResolveResult:
    ok: bool
    instances: list[Instance]
    error: str | None = None
    cacheable: bool | None = None
    cache_key: str | None = None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ResolveResult:
        return cls(
            ok=bool(obj["ok"]),
            instances=[instance_from_json(i) for i in obj.get("instances") or []],
            error=obj.get("error"),
            cacheable=obj.get("cacheable"),
            cache_key=obj.get("cache_key"),
        )

    def by_address(self) -> dict[str, Instance]:
        return {i.address: i for i in self.instances}


@dataclass(frozen=True)
class Call:
    """One Echo call of echo-client."""

    seq: int
    time: float
    """Wall-clock time (seconds since the epoch) when the call returned."""
    ok: bool
    server: str | None
    addr: str
    latency_ms: float
    error: str | None

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Call:
        return cls(
            seq=int(obj["seq"]),
            time=int(obj["unix_ns"]) / 1e9,
            ok=bool(obj["ok"]),
            server=obj.get("server"),
            addr=str(obj.get("addr") or ""),
            latency_ms=float(obj.get("latency_ms") or 0.0),
            error=obj.get("error"),
        )


@dataclass(frozen=True)
class ClientSummary:
    calls: int
    ok: int
    errors: int
    by_server: dict[str, int]

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ClientSummary:
        return cls(
            calls=int(obj["calls"]),
            ok=int(obj["ok"]),
            errors=int(obj["errors"]),
            by_server={str(k): int(v) for k, v in (obj.get("by_server") or {}).items()},
        )


# ---------------------------------------------------------------- processes


class Program:
    """A running Go program: its own process group, stdout parsed as JSON lines
    by a reader thread, stderr to ``log``."""

    def __init__(self, name: str, argv: list[str], log: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._lines: list[Json] = []
        self._cond = threading.Condition()
        with log.open("ab") as err:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                start_new_session=True,
                env=dict(env),
            )
        self._reader = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            text = raw.decode(errors="replace").strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                obj = {"event": "unparsed", "text": text}
            if not isinstance(obj, dict):
                obj = {"event": "unparsed", "text": text}
            with self._cond:
                self._lines.append(obj)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    # --- state -----------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def lines(self, event: str | None = None) -> list[Json]:
        """Every line so far (or those of one event)."""
        with self._cond:
            return [ln for ln in self._lines if event is None or ln.get("event") == event]

    def stderr_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _failure(self, what: str) -> ProgramError:
        state = "running" if self.alive() else f"exited with {self.popen.returncode}"
        return ProgramError(
            f"{self.name} {what} ({state})\nargv: {' '.join(self.argv)}\n"
            f"stdout lines: {self.lines()[-10:]}\nstderr ({self.log}):\n{self.stderr_tail()}"
        )

    # --- waiting -----------------------------------------------------------

    def wait_for(
        self,
        match: str | Callable[[Json], bool],
        *,
        timeout: float = START_TIMEOUT,
        after: int = 0,
    ) -> Json:
        """The first line (from index ``after``) with event ``match`` or for which
        ``match(line)`` is true; fails at the deadline or when the program exits
        without printing it. An ``error`` line fails at once."""

        def pred(ln: Json) -> bool:
            return ln.get("event") == match if isinstance(match, str) else match(ln)

        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ln in self._lines[after:]:
                    if pred(ln):
                        return ln
                    if ln.get("event") == "error":
                        raise self._failure(f"reported an error: {ln.get('error')}")
                if not self._reader.is_alive():
                    raise self._failure(f"ended without printing {match!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._failure(f"did not print {match!r} within {timeout:.0f} s")
                self._cond.wait(min(left, 0.5))

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the program to exit by itself; its exit status."""
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._failure(f"still running after {timeout:.0f} s") from None
        self._reader.join(5)
        return rc

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the program's process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def stop(self, grace: float = STOP_GRACE) -> int:
        """SIGTERM, then SIGKILL after ``grace``; the exit status (negative if killed)."""
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(grace)
        self.kill()
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the whole group (a crash: nothing is deregistered)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self._reader.join(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


class EchoServer(Program):
    addr: str
    server_id: str

    def wait_registered(self, timeout: float = START_TIMEOUT) -> Json:
        line = self.wait_for("registered", timeout=timeout)
        if not line.get("ok"):
            raise self._failure(f"failed to register: {line.get('error')}")
        return line


class EchoClient(Program):
    def calls(self) -> list[Call]:
        return [Call.from_json(ln) for ln in self.lines("call")]

    def summary(self, timeout: float = 60.0) -> ClientSummary:
        """Wait for the client to finish (after --calls or --duration) and return its summary."""
        return ClientSummary.from_json(self.wait_for("summary", timeout=timeout))

    def finish(self, timeout: float = STOP_GRACE) -> ClientSummary:
        """Stop a client started without limits (SIGTERM) and return its summary."""
        self.signal(signal.SIGTERM)
        return self.summary(timeout)


class GoRegister(Program):
    pass


def _endpoints(etcd: Sequence[str] | str) -> str:
    return etcd if isinstance(etcd, str) else ",".join(etcd)


def _tags(tags: Mapping[str, str] | None) -> list[str]:
    if not tags:
        return []
    for k, v in tags.items():
        if "," in k or "," in v or "=" in k:
            raise ValueError(f"tag {k}={v}: the programs' --tags cannot carry ',' or '=' in a key")
    return ["--tags", ",".join(f"{k}={v}" for k, v in tags.items())]


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


class Launcher:
    """Starts the programs and stops every one of them at :meth:`stop_all`
    (also at interpreter exit). Logs go to ``workdir``."""

    def __init__(self, workdir: Path, bindir: Path | None = None) -> None:
        self.bindir = bindir or ensure_built()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.env: dict[str, str] = dict(os.environ)
        self._running: list[Program] = []
        self._seq = 0
        atexit.register(self.stop_all)

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def path(self, program: str) -> Path:
        return self.bindir / program

    def _log(self, program: str) -> Path:
        self._seq += 1
        return self.workdir / f"{self._seq:03d}-{program}.stderr"

    def _start(
        self, cls: type[Program], program: str, args: list[str], env: Mapping[str, str] | None
    ) -> Any:
        argv = [str(self.path(program)), *args]
        proc = cls(program, argv, self._log(program), {**self.env, **(env or {})})
        self._running.append(proc)
        return proc

    def stop_all(self) -> None:
        while self._running:
            self._running.pop().stop()

    # --- echo-server -------------------------------------------------------

    def echo_server(
        self,
        addr: str,
        name: str,
        *,
        register_etcd: Sequence[str] | str | None = None,
        service: str | None = None,
        prefix: str | None = None,
        tags: Mapping[str, str] | None = None,
        weight: int | None = None,
        log_calls: bool = False,
        wait_ready: bool = True,
        wait_registered: bool = True,
    ) -> EchoServer:
        """A Kitex Echo server on ``addr`` answering with ``name``; with
        ``register_etcd`` it self-registers (Kitex does so 1 s after it listens)."""
        args = ["--addr", addr, "--name", name]
        if register_etcd is not None:
            if not service:
                raise ValueError("service is required with register_etcd")
            args += ["--register-etcd", _endpoints(register_etcd), "--service", service]
            if prefix:
                args += ["--prefix", prefix]
            args += _tags(tags)
            if weight is not None:
                args += ["--weight", str(weight)]
        if log_calls:
            args.append("--log-calls")
        proc: EchoServer = self._start(EchoServer, "echo-server", args, None)
        proc.addr, proc.server_id = addr, name
        if wait_ready:
            proc.wait_for("ready")
        if register_etcd is not None and wait_registered:
            proc.wait_registered()
        return proc

    # --- echo-client -------------------------------------------------------

    def echo_client(
        self,
        etcd: Sequence[str] | str,
        service: str,
        *,
        prefix: str | None = None,
        calls: int = 0,
        interval: float = 0.1,
        duration: float = 0.0,
        timeout: float = 1.0,
        lb: str = "random",
    ) -> EchoClient:
        """Start a Kitex client calling Echo; ``calls``/``duration`` 0 = no limit
        (stop it with :meth:`EchoClient.finish`)."""
        args = ["--etcd", _endpoints(etcd), "--service", service, "--calls", str(calls)]
        args += ["--interval", _duration(interval), "--timeout", _duration(timeout), "--lb", lb]
        if duration > 0:
            args += ["--duration", _duration(duration)]
        if prefix:
            args += ["--prefix", prefix]
        proc: EchoClient = self._start(EchoClient, "echo-client", args, None)
        proc.wait_for("start")
        return proc

    def run_echo_client(
        self, etcd: Sequence[str] | str, service: str, *, calls: int, **kwargs: Any
    ) -> tuple[list[Call], ClientSummary]:
        """Run a client for ``calls`` calls to the end: its calls and summary."""
        proc = self.echo_client(etcd, service, calls=calls, **kwargs)
        summary = proc.summary(timeout=60.0 + calls * (kwargs.get("interval", 0.1) + 1.0))
        proc.wait()
        return proc.calls(), summary

    # --- resolvers ---------------------------------------------------------

    def _run_once(self, program: str, args: list[str], timeout: float) -> Json:
        argv = [str(self.path(program)), *args]
        try:
            out = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, env=self.env
            )
        except subprocess.TimeoutExpired as exc:
            raise ProgramError(f"{program} did not finish within {timeout:.0f} s") from exc
        lines = [json.loads(ln) for ln in out.stdout.splitlines() if ln.strip()]
        for ln in lines:
            if ln.get("event") == "resolve":
                return dict(ln)
        raise ProgramError(
            f"{program} exited {out.returncode} without a result\n"
            f"stdout: {out.stdout}\nstderr: {out.stderr[-3000:]}"
        )

    def resolve(
        self,
        etcd: Sequence[str] | str,
        service: str,
        *,
        prefix: str | None = None,
        default_weight: int | None = None,
        timeout: float = 30.0,
    ) -> ResolveResult:
        """registry-etcd's ``Resolve`` for ``service``, as the Kitex client gets it."""
        args = ["--etcd", _endpoints(etcd), "--service", service]
        if prefix:
            args += ["--prefix", prefix]
        if default_weight is not None:
            args += ["--default-weight", str(default_weight)]
        return ResolveResult.from_json(self._run_once("resolve", args, timeout))

    def hertz_resolve(
        self, etcd: Sequence[str] | str, service: str, *, timeout: float = 30.0
    ) -> ResolveResult:
        """hertz-contrib/registry/etcd's ``Resolve`` (prefix ``hertz/registry-etcd``)."""
        args = ["--etcd", _endpoints(etcd), "--service", service]
        return ResolveResult.from_json(self._run_once("hertz-resolve", args, timeout))

    # --- go-register -------------------------------------------------------

    def go_register(
        self,
        etcd: Sequence[str] | str,
        service: str,
        addr: str,
        *,
        tags: Mapping[str, str] | None = None,
        weight: int | None = None,
        prefix: str | None = None,
        ttl: int | None = None,
        count: int = 1,
        wait_ready: bool = True,
        ready_timeout: float = START_TIMEOUT,
    ) -> GoRegister:
        """Register ``count`` instances (ports ``port .. port+count-1``) with
        registry-etcd's own Register; they stay until :meth:`Program.stop`,
        which deregisters them (:meth:`Program.kill` leaves the leases to expire)."""
        args = ["--etcd", _endpoints(etcd), "--service", service, "--addr", addr]
        args += _tags(tags)
        if weight is not None:
            args += ["--weight", str(weight)]
        if prefix:
            args += ["--prefix", prefix]
        if ttl is not None:
            args += ["--ttl", str(ttl)]
        if count != 1:
            args += ["--count", str(count)]
        proc: GoRegister = self._start(GoRegister, "go-register", args, None)
        if wait_ready:
            proc.wait_for("ready", timeout=ready_timeout)
        return proc


# ---------------------------------------------------------------- small helpers


def wait_until(
    check: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.1
) -> Any:
    """Poll ``check`` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)


def etcdctl_get_json(output: str) -> list[tuple[bytes, bytes]]:
    """Parse ``etcdctl get -w json`` output into exact (key, value) bytes."""
    if not output.strip():
        return []
    data = json.loads(output)
    return [
        (base64.b64decode(kv["key"]), base64.b64decode(kv.get("value", "")))
        for kv in data.get("kvs") or []
    ]


@dataclass
class BuildInfo:
    bindir: Path
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def build_info() -> BuildInfo:
    """Where the programs are and how long their (last) build took."""
    bindir = ensure_built()
    try:
        stamp = json.loads((bindir / ".stamp").read_text())
    except (OSError, ValueError):
        stamp = {}
    return BuildInfo(bindir=bindir, seconds=stamp.get("seconds"), extra=stamp)


@contextlib.contextmanager
def launcher(workdir: Path) -> Iterator[Launcher]:
    """A :class:`Launcher` whose programs are all stopped on exit."""
    with Launcher(workdir) as lnch:
        yield lnch


def main(argv: Sequence[str] | None = None) -> int:
    """``python tests/interop/programs.py build``: build (or find) the programs and
    print their directory; ``info``: also the last build's duration as JSON."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "build"
    if command == "build":
        print(ensure_built())
        return 0
    if command == "info":
        info = build_info()
        print(json.dumps({"bindir": str(info.bindir), "build_seconds": info.seconds}))
        return 0
    print(f"usage: {Path(__file__).name} [build|info]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "PROGRAMS",
    "BuildError",
    "Call",
    "ClientSummary",
    "EchoClient",
    "EchoServer",
    "GoRegister",
    "Launcher",
    "Program",
    "ProgramError",
    "ResolveResult",
    "build_info",
    "cache_dir",
    "ensure_built",
    "etcdctl_get_json",
    "instance_from_json",
    "launcher",
    "source_hash",
    "wait_until",
]
