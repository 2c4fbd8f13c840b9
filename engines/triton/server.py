"""Launch and stop a real ``tritonserver`` on the System's host (loopback unless placed on a
cluster node), leaving nothing behind."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import uuid
from pathlib import Path

from engines.triton.repository import (
    MODEL_NAME,
    default_binary,
    make_backend_dir,
    make_model_repository,
)
from engines.workloads import Workload
from harness.errors import InputError
from harness.process import ServerProcess, StartupFolders, work_dir
from harness.scenario import Scenario

SHM_DIR = Path("/dev/shm")
#: The Python backend makes ``/tmp/python_env_XXXXXX`` (a fixed path: its
#: ``EnvironmentManager`` calls ``mkdtemp("/tmp/python_env_XXXXXX")``, TMPDIR is ignored)
#: as it loads, before the first stub starts, and removes it only on a graceful shutdown
#: after its models loaded (not when stopped while loading, nor always when its parent dies).
PYTHON_ENVS = "/tmp/python_env_*"


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class TritonServer:
    """One tritonserver process serving the ``pipebench`` model for a scenario."""

    def __init__(
        self,
        name: str,
        scenario: Scenario,
        workload: Workload,
        compute: bool,
        binary: str | None,
        host: str,
    ) -> None:
        self.name = name
        self.host = host
        self.binary = Path(binary) if binary else default_binary()
        if not (self.binary.is_file() and os.access(self.binary, os.X_OK)):
            raise InputError(
                f"{name}: tritonserver binary not found or not executable: {self.binary}"
            )
        self._workdir = Path(tempfile.mkdtemp(prefix="pipebench-triton-", dir=work_dir()))
        self._shm_prefix = f"pipebench_{uuid.uuid4().hex[:12]}_"
        self.http_port, self.grpc_port = free_port(host), free_port(host)
        self.metrics_port = free_port(host)
        self.model_name = MODEL_NAME
        try:
            self.process = self._launch(scenario, workload, compute)
        except BaseException:
            shutil.rmtree(self._workdir, ignore_errors=True)
            raise

    def _launch(self, scenario: Scenario, workload: Workload, compute: bool) -> ServerProcess:
        models = make_model_repository(self._workdir / "models", scenario, workload, compute)
        backends = make_backend_dir(self._workdir / "backends")
        argv = [
            str(self.binary),
            f"--model-repository={models}",
            f"--backend-directory={backends}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            "--allow-metrics=true",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--disable-auto-complete-config",
            "--exit-timeout-secs=2",
            f"--backend-config=python,shm-region-prefix-name={self._shm_prefix}",
        ]
        # The stub's embedded Python finds its environment through PATH, not PYTHONPATH.
        # Temp files of the server and its stubs go into the work folder, removed with it.
        tmp = self._workdir / "tmp"
        tmp.mkdir()
        path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
        env = dict(os.environ, PATH=path, TMPDIR=str(tmp))
        shm = str(SHM_DIR / f"{self._shm_prefix}*")
        # Its first stub's shm region is made after the backend's python_env_* folder.
        startup = StartupFolders(PYTHON_ENVS, until=shm)
        leftovers = [self._workdir, shm]
        return ServerProcess(
            self.name, argv, env=env, leftovers=leftovers, grace=10.0, startup_folders=startup
        )

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def shm_regions(self) -> list[Path]:
        return sorted(SHM_DIR.glob(f"{self._shm_prefix}*"))

    def loaded(self) -> None:
        """The model is loaded: the backend's python_env_* folder is removed now."""
        self.process.remove_startup_folders()

    def stop(self) -> None:
        self.process.stop()
        for region in self.shm_regions():  # only left if a stub was killed
            region.unlink(missing_ok=True)
        shutil.rmtree(self._workdir, ignore_errors=True)
