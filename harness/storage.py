"""Writing result files: a name no other run takes, atomic replacement, a fallback folder.

Two runs of one scenario started in the same second (two terminals, two CI jobs on one
runner) must not share a file: a run claims its name by hard-linking a complete temporary
file to it, which fails if the name exists, so it never replaces another run's file and no
reader ever sees an empty or half-written one. Later saves replace the run's own file
atomically (write beside it, then rename).

A results folder that fails mid-run (removed, read-only, full) must not cost the
measurements: the document stays in memory (the runner holds it), every system still runs,
and the final save goes to a fallback folder under the system's temp folder instead.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from harness.errors import InputError

#: Result files are read by other tools and users: owner writes, everyone reads.
FILE_MODE = 0o644


@contextlib.contextmanager
def interruptions_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, then act on them as usual.

    Serialising a document runs Python functions inside pydantic's Rust core, which turns
    an interruption raised in them into a serialisation error: a Ctrl-C landing there
    became a traceback and exit code 1 instead of the saved partial result and exit 130.
    Writing a file has the same kind of gap: an interruption between ``mkstemp``'s
    ``open`` and its return leaves a temporary file whose name nobody holds.
    Signal handlers belong to the main thread; elsewhere the block runs as it is (Python
    raises KeyboardInterrupt only in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[tuple[int, FrameType | None]] = []
    handlers = {
        number: signal.signal(number, lambda n, frame: held.append((n, frame)))
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        for number, frame in held[:1]:
            handler = handlers[number]
            if callable(handler):
                handler(number, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(number)


def prepare_dir(directory: Path) -> Path:
    """Create ``directory`` if needed and prove it writable before any run starts."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
            pass
    except OSError as exc:
        raise InputError(
            f"{directory}: results folder not writable: {exc.strerror or exc}"
        ) from None
    return directory


def _write_temporary(directory: Path, name: str, document: dict[str, Any]) -> Path:
    """The JSON document in a new hidden file of ``directory`` (mode 0644), not yet named."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), FILE_MODE)  # mkstemp creates 0600
            json.dump(document, handle, indent=1, allow_nan=True)
            handle.write("\n")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


@interruptions_deferred()
def write_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it into place."""
    tmp = _write_temporary(path.parent, path.name, document)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@interruptions_deferred()
def write_new(directory: Path, stem: str, document: dict[str, Any]) -> Path:
    """Write JSON under the first free name of ``stem.json``, ``stem-2.json``, ...

    ``os.link`` refuses an existing name, so two processes racing for one name each get
    their own file, and the name appears only once the file is complete.
    """
    tmp = _write_temporary(directory, stem, document)
    try:
        for n in itertools.count(1):
            path = directory / (f"{stem}.json" if n == 1 else f"{stem}-{n}.json")
            try:
                os.link(tmp, path)
            except FileExistsError:
                continue
            return path
    finally:
        tmp.unlink(missing_ok=True)
    raise AssertionError("unreachable")  # itertools.count never ends


def default_fallback() -> Path:
    return Path(tempfile.gettempdir()) / "pipebench-results"


class ResultStore:
    """Where one run's document goes: ``directory/stem.json`` (or ``stem-N.json`` if taken).

    :meth:`save` never raises on a write failure: it records the problem and the run goes
    on. :meth:`finish` is the last save; if the folder is still failing, it saves the
    document in ``fallback`` instead. ``path`` is always the file that holds the newest
    document (``None`` if none could be written), ``problem`` why the folder failed.
    """

    def __init__(self, directory: Path, stem: str, fallback: Path | None = None) -> None:
        self.directory = directory
        self.stem = stem
        self.fallback = fallback or default_fallback()
        self.path: Path | None = None
        self.problem: str | None = None
        self.fallback_problem: str | None = None

    def save(self, document: dict[str, Any]) -> str | None:
        """Write ``document``; the problem if this is the save at which the folder failed."""
        try:
            if self.path is None:
                self.path = write_new(self.directory, self.stem, document)
            else:
                write_atomic(self.path, document)
        except OSError as exc:
            first = self.problem is None
            self.problem = f"{self.path or self.directory}: {exc.strerror or exc}"
            return self.problem if first else None
        self.problem = None
        return None

    def finish(self, document: dict[str, Any]) -> None:
        """The final save: in the results folder if it works again, else in the fallback."""
        self.save(document)
        if self.problem is None:
            return
        try:
            self.fallback.mkdir(parents=True, exist_ok=True)
            self.path = write_new(self.fallback, self.stem, document)
        except OSError as exc:
            self.path = None
            self.fallback_problem = f"{self.fallback}: {exc.strerror or exc}"

    def outcome(self) -> str:
        """One line: where the results are, or why they are nowhere."""
        if self.problem is None:
            return f"results: {self.path}"
        if self.path is not None:
            return f"results: not saved in {self.directory} ({self.problem}); saved to {self.path}"
        return f"results: not saved ({self.problem}; fallback {self.fallback_problem})"
