"""Child server processes that are always stopped: by :meth:`stop`, at exit, or with us.

Every server the harness launches (Thrift, tritonserver) is a :class:`ServerProcess`:
it runs in its own process group (so its children, e.g. Triton's Python stubs, are
signalled with it), the kernel sends it SIGTERM if the harness dies (``PR_SET_PDEATHSIG``),
its configuration arrives on stdin (argv is limited to 128 KiB per argument), and its
output goes to a log file whose last lines explain a failure; during a run
(:func:`keep_failed_logs`) a failed server's log is also kept next to the result file.

Everything the servers and the harness write to disk (logs, Triton's work folders, their
temp files) lives in one temp folder per harness process, :func:`work_dir`, removed at
exit, on Ctrl-C and, by a watchdog, if the harness is killed.

``PR_SET_PDEATHSIG`` alone is not enough: it does not reach the server's own children
(tritonserver's stubs outlive it and keep their ``/dev/shm`` regions), and it fires when
the *thread* that started the server ends. So each server also gets a watchdog process
(:mod:`harness.watchdog`) that kills the whole group and removes the server's leftovers
if the harness dies without stopping it, even by SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import SystemFailure
from harness.watchdog import remove_startup_folders, startup_end

_PR_SET_PDEATHSIG = 1
# Resolved before any fork: loading symbols in a child forked from a threaded parent can hang.
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_WATCHDOG = Path(__file__).with_name("watchdog.py")
_live: set[ServerProcess] = set()
#: Rows of an ASCII table (tritonserver prints its whole option table when it fails).
_TABLE_ROW = re.compile(r"^[+|]")
#: A line that states an error: glog's ``E1201 ...``, ``error: ...``, ``SomeError: ...``.
_ERROR_LINE = re.compile(r"^(E\d{4} |error\b|Error\b|ERROR\b|\w+Error: )")


def _child_hook(pid_w: int, term_with_parent: bool) -> Callable[[], None]:
    """A pre-exec hook for the server's process: its first act, before the server's program
    runs, is to hand its PID to its watchdog (which runs already) on ``pid_w``; then, if
    ``term_with_parent``, the kernel sends it SIGTERM when the harness goes away.

    Checking the parent after ``prctl`` closes the race where the harness died between
    fork and ``prctl``: the signal would never come.
    """
    parent = os.getpid()

    def hook() -> None:
        os.write(pid_w, b"%d\n" % os.getpid())
        if term_with_parent:
            # SIGTERM, not SIGKILL: a server that shuts down gracefully cleans up after
            # itself (Triton's python_env_* folders); the watchdog SIGKILLs it if it does not.
            _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _pdeathsig_allowed() -> bool:
    # The signal fires when the starting *thread* ends: from any other thread than the main
    # one it would kill a healthy server early, so there the watchdog alone covers a crash.
    return threading.current_thread() is threading.main_thread()


@dataclass(frozen=True)
class StartupFolders:
    """Empty folders a server makes at a fixed, shared place while it starts (Triton's Python
    backend: ``/tmp/python_env_*``): those matching ``pattern`` made after its launch and
    before the first file matching ``until`` (see :mod:`harness.watchdog`)."""

    pattern: str
    until: str


class _Watchdog:
    """The :mod:`harness.watchdog` process of one server (or of a temp folder: ``server``
    false), and the pipe that dismisses it. It starts before what it guards exists; a
    server's process tells it its PID through :meth:`child_hook`."""

    def __init__(
        self,
        server: bool,
        leftovers: Sequence[str | Path],
        term: bool,
        startup: tuple[StartupFolders, float] | None = None,
    ) -> None:
        stop_r, self._stop_w = os.pipe()
        pid_r, self._pid_w = os.pipe() if server else (None, None)
        harness_fd = os.pidfd_open(os.getpid())
        passed = [fd for fd in (pid_r, stop_r, harness_fd) if fd is not None]
        guarded = "-" if pid_r is None else str(pid_r)
        argv = [sys.executable, "-I", "-S", str(_WATCHDOG), guarded, str(stop_r)]
        if startup:
            folders, since = startup
            leftovers = ["--startup", folders.pattern, folders.until, repr(since), *leftovers]
        try:
            self._popen = subprocess.Popen(
                [*argv, str(harness_fd), str(int(term)), *map(str, leftovers)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=passed,
                start_new_session=True,
            )
        except OSError:
            self.close_pid_pipe()
            os.close(self._stop_w)
            raise
        finally:
            for fd in passed:
                os.close(fd)

    def child_hook(self, term_with_parent: bool) -> Callable[[], None]:
        """The pre-exec hook of the server's process (see :func:`_child_hook`)."""
        assert self._pid_w is not None, "a folder's watchdog guards no server"
        return _child_hook(self._pid_w, term_with_parent)

    def close_pid_pipe(self) -> None:
        """The server's process was forked (it wrote its PID) or never will be: our end goes,
        so the watchdog reads end-of-file instead of waiting for a PID."""
        if self._pid_w is not None:
            os.close(self._pid_w)
            self._pid_w = None

    def dismiss(self) -> None:
        """The server was stopped normally: let the watchdog exit without doing anything."""
        self.close_pid_pipe()
        with contextlib.suppress(OSError):  # EPIPE: the watchdog is gone already
            os.write(self._stop_w, b"x")
        os.close(self._stop_w)
        try:
            self._popen.wait(5.0)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()


class ServerProcess:
    """One launched server; ``name`` is used in every message about it.

    ``config`` is given to the server on its stdin (an unnamed file, so it is never left
    anywhere). ``leftovers`` are paths or globs (a work folder, ``/dev/shm/prefix*``) that
    the watchdog removes if the harness dies without stopping the server; a normal
    :meth:`stop` leaves them to the caller, which knows when they are no longer used.
    ``startup_folders`` are removed on every exit path: by :meth:`stop`, or by the watchdog.
    ``grace`` is how long :meth:`stop` lets it shut down before SIGKILL.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        leftovers: Sequence[str | Path] = (),
        config: bytes = b"",
        grace: float = 5.0,
        startup_folders: StartupFolders | None = None,
    ) -> None:
        self.name = name
        self.grace = grace
        self._startup_folders = startup_folders
        self._failure_log: Path | None = None
        fd, log_name = tempfile.mkstemp(
            prefix=f"pipebench-{_slug(name)}-", suffix=".log", dir=work_dir()
        )
        os.close(fd)
        self.log_path = Path(log_name)
        term_with_parent = _pdeathsig_allowed()
        self._launched = time.time()
        startup = (startup_folders, self._launched) if startup_folders else None
        try:
            self._watchdog = _Watchdog(True, leftovers, not term_with_parent, startup)
        except OSError as exc:
            self.log_path.unlink(missing_ok=True)
            raise SystemFailure(f"{name}: cannot start its watchdog: {exc.strerror}") from None
        with self.log_path.open("wb") as log, tempfile.TemporaryFile(dir=work_dir()) as stdin:
            stdin.write(config)
            stdin.seek(0)
            try:
                self._popen = subprocess.Popen(
                    list(argv),
                    stdin=stdin,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    start_new_session=True,
                    preexec_fn=self._watchdog.child_hook(term_with_parent),
                )
            except (OSError, subprocess.SubprocessError) as exc:
                # The child failed to exec (or to reach its watchdog: killed?) and is gone.
                self._watchdog.dismiss()
                self.log_path.unlink(missing_ok=True)
                why = _why(argv[0], exc) if isinstance(exc, OSError) else "its watchdog is gone"
                raise SystemFailure(f"{name}: cannot start {argv[0]}: {why}") from None
            finally:
                self._watchdog.close_pid_pipe()
        _live.add(self)

    @property
    def pid(self) -> int:
        return self._popen.pid

    def alive(self) -> bool:
        return self._popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def explain(self, lines: int = 15) -> str:
        """The server's own account of a failure: its error lines and its last lines,
        without the tables it prints (tritonserver's options and models), then where its
        whole log is kept."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(its log is gone)"
        kept = [line for line in text.strip().splitlines() if not _TABLE_ROW.match(line)]
        tail = kept[-lines:]
        errors = [line for line in kept[: -lines or None] if _ERROR_LINE.match(line)][-lines:]
        excerpt = "\n".join([*errors, *(["..."] if errors else []), *tail])
        kept_at = self._keep_log()
        return f"last lines of its log:\n{excerpt}" + (f"\nwhole log: {kept_at}" if kept_at else "")

    def _keep_log(self) -> Path | None:
        """Copy the log next to the run's result file (once); where it went, if anywhere."""
        if self._failure_log is None and _keep_beside is not None:
            target = _keep_beside.with_name(f"{_keep_beside.stem}.{_slug(self.name)}.log")
            with contextlib.suppress(OSError):
                shutil.copyfile(self.log_path, target)
                os.chmod(target, 0o644)
                self._failure_log = target
        return self._failure_log

    def check_alive(self) -> None:
        if not self.alive():
            raise SystemFailure(
                f"{self.name}: server exited with code {self._popen.returncode}; {self.explain()}"
            )

    def wait_for(self, probe: Callable[[], bool], timeout: float, what: str) -> None:
        """Call ``probe`` until it is true; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise SystemFailure(
                    f"{self.name}: exited with code {self._popen.returncode} before {what}; "
                    f"{self.explain()}"
                )
            if probe():
                return
            if time.monotonic() > deadline:
                raise SystemFailure(
                    f"{self.name}: not {what} after {timeout:g} s; {self.explain()}"
                )
            time.sleep(0.05)

    def remove_startup_folders(self) -> None:
        """Remove the server's start-up folders now (it started; e.g. Triton's python_env_*,
        used only for execution environments, which our models have none of): no way of
        ending the run leaves them, and the server only logs at shutdown that it was gone."""
        if self._startup_folders:
            end = startup_end(self._startup_folders.until) or time.time()
            remove_startup_folders(self._startup_folders.pattern, self._launched, end)

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM the server, SIGKILL its group after ``grace`` seconds, remove its start-up
        folders. Idempotent.

        Only the server gets SIGTERM: it shuts its own children down (tritonserver unloads
        its models, stops its stubs and removes its ``python_env_*`` folder); stubs killed
        under it abort that and leave the folder behind."""
        # The start-up's end is read before the stop removes what marks it; with no mark,
        # it is when the server is gone (it may still make its folders while it stops).
        end = startup_end(self._startup_folders.until) if self._startup_folders else None
        if self in _live:
            _live.discard(self)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._popen.pid, signal.SIGTERM)
            self._signal_group(signal.SIGCONT)  # a stopped (SIGSTOP) server acts on it now
            try:
                self._popen.wait(self.grace if grace is None else grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self._popen.wait()
            # Children that outlived the leader (e.g. Python stubs) share its group.
            self._signal_group(signal.SIGKILL)
            self._watchdog.dismiss()
            if self._startup_folders:
                pattern = self._startup_folders.pattern
                remove_startup_folders(pattern, self._launched, end or time.time())
        self.log_path.unlink(missing_ok=True)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)


def _why(program: str, exc: OSError) -> str:
    """Why ``program`` could not be executed. ENOENT for a file that exists means its
    ``#!`` line names an interpreter that does not exist; say so rather than "No such file"."""
    path = Path(program)
    if exc.errno == errno.ENOENT and path.is_file():
        try:
            first = path.read_bytes()[:200].split(b"\n", 1)[0].decode(errors="replace")
        except OSError:
            first = ""
        if first.startswith("#!"):
            return f"its interpreter line {first!r} names a program that does not exist"
    if exc.errno == errno.ENOEXEC:
        return "not an executable for this machine (no #! line, wrong architecture?)"
    return exc.strerror or str(exc)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)


def stop_all() -> None:
    """Stop every server still running."""
    for process in list(_live):
        process.stop()


_keep_beside: Path | None = None


@contextlib.contextmanager
def keep_failed_logs(result_path: Path | None) -> Iterator[None]:
    """While active, a failed server's log is copied to ``RESULT-STEM.SERVER.log`` beside
    ``result_path`` (the work folder that holds it is removed at exit)."""
    global _keep_beside
    previous, _keep_beside = _keep_beside, result_path
    try:
        yield
    finally:
        _keep_beside = previous


_work: tuple[Path, _Watchdog] | None = None
_work_lock = threading.Lock()


def work_dir() -> Path:
    """This process's temp folder for servers' logs, work folders and temp files.

    Its watchdog starts *before* the folder is created and removes whatever matches its
    name pattern, so no moment exists at which killing the harness leaves it behind.
    """
    global _work
    with _work_lock:
        if _work is None:
            prefix = f"pipebench-run-{os.getpid()}-"
            watchdog = _Watchdog(False, [Path(tempfile.gettempdir()) / f"{prefix}*"], term=False)
            _work = (Path(tempfile.mkdtemp(prefix=prefix)), watchdog)
        return _work[0]


#: Watchdogs kept until this process exits, by folder prefix (see ``guarded_dir``).
_lingering: dict[str, _Watchdog] = {}


@contextlib.contextmanager
def guarded_dir(name: str, linger: bool = False) -> Iterator[Path]:
    """A temp folder ``pipebench-NAME-PID-*`` for the ``with`` block, removed after it and,
    by a watchdog started before it exists, if the harness is killed meanwhile (once no
    process naming it in its command line is left, or after the watchdog's grace).

    ``linger``: the watchdog stays until this process exits and removes the folder again
    then. For a folder that code of this very process may write into after the block
    (Ray's driver makes its session folder there anew after the cluster stopped)."""
    prefix = f"pipebench-{name}-{os.getpid()}-"
    watchdog = _Watchdog(False, [Path(tempfile.gettempdir()) / f"{prefix}*"], term=False)
    try:
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        if linger and prefix not in _lingering:  # one removes every folder of the prefix
            _lingering[prefix] = watchdog
        else:
            watchdog.dismiss()


def shutdown() -> None:
    """Stop every server and remove the work folder; at exit and on interruption."""
    global _work
    stop_all()
    with _work_lock:
        if _work is not None:
            folder, watchdog = _work
            shutil.rmtree(folder, ignore_errors=True)
            watchdog.dismiss()
            _work = None


atexit.register(shutdown)
