"""Result files are replaced atomically: no reader and no crash ever sees half a JSON file.

A writer process rewrites a large result file (alternating two documents) through
``write_atomic`` as fast as it can, and is killed (SIGKILL: no cleanup at all) or
interrupted (SIGINT: Python unwinds) at random moments, again and again. Meanwhile the test
reads the file continuously. Every read, and every ``*.json`` left after each kill, must be
one of the two complete documents. With a plain ``open(path, "w")`` the large write is
caught half-way almost every time.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import storage
from tests.conftest import ROOT

#: Two distinct documents of a few MB each, so one write takes tens of milliseconds.
WRITER = """
import sys
from pathlib import Path
from harness.storage import write_atomic

def document(tag):
    records = [{"label": tag, "clients": n, "latency_ms": {"p50": n / 7}} for n in range(20000)]
    return {"schema_version": 1, "complete": tag == "B", "records": records}

path = Path(sys.argv[1])
first, second = document("A"), document("B")
write_atomic(path, first)
print("ready", flush=True)
while True:
    write_atomic(path, second)
    write_atomic(path, first)
"""


def read_complete(path: Path) -> str:
    """The tag of the complete document at ``path`` (a partial one fails to parse)."""
    document = json.loads(path.read_text())
    assert len(document["records"]) == 20000
    tags = {record["label"] for record in document["records"]}
    assert len(tags) == 1
    return tags.pop()


def test_an_interrupted_writer_never_leaves_half_a_json(tmp_path):
    path = tmp_path / "run.json"
    rng = random.Random(6)
    replaced = 0
    for attempt in range(6):
        killed_before = set(tmp_path.glob(".*.tmp"))  # SIGKILL leaves its temporary file
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
            # Read while the writer works, until it has replaced the document at least once
            # (a reader racing the writer), then stop it at a random moment of the next ones.
            first = current = read_complete(path)
            until = time.monotonic() + 120
            while current == first and time.monotonic() < until:
                current = read_complete(path)
            replaced += current != first
            time.sleep(rng.uniform(0.0, 0.3))
            sig = signal.SIGKILL if attempt % 2 else signal.SIGINT
            writer.send_signal(sig)
            writer.wait(60)
        finally:
            writer.kill()  # a failed read must not leave the writer running
            writer.wait()
            if writer.stdout:
                writer.stdout.close()
        for left in tmp_path.glob("*.json"):
            read_complete(left)
        if sig == signal.SIGINT:  # unwound: its temporary file is removed too
            assert set(tmp_path.glob(".*.tmp")) == killed_before, "SIGINT left a temporary file"
    assert [p.name for p in tmp_path.glob("*.json")] == ["run.json"]
    assert replaced == 6  # every attempt raced a replacement of the file


def test_an_interruption_right_after_the_temporary_file_is_created_is_held(tmp_path, monkeypatch):
    """Ctrl-C landing inside ``mkstemp``, after its ``open`` and before it returns the
    name, used to leave a temporary file nobody could remove (seen once in CI). Now it
    waits until the write is done: the document is complete, nothing else is left, and
    the interruption still arrives."""
    created = []

    def interrupted_mkstemp(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        created.append(name)
        signal.raise_signal(signal.SIGINT)
        return fd, name

    real_mkstemp = storage.tempfile.mkstemp
    monkeypatch.setattr(storage.tempfile, "mkstemp", interrupted_mkstemp)
    path = tmp_path / "run.json"
    try:
        storage.write_atomic(path, {"schema_version": 1, "records": []})
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the held Ctrl-C was lost")
    assert created, "the write did not go through mkstemp"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]
    assert json.loads(path.read_text()) == {"schema_version": 1, "records": []}
