"""llama-server as a child process for ``bench api --peer``: started on a free loopback
port, ready once its /health answers, its peak memory read from /proc, stopped after."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from ..errors import AssistantError

__all__ = ["Peer", "PeerError", "hwm_mb"]

PEER_START_S = 120.0


class PeerError(AssistantError):
    exit_code = 69  # EX_UNAVAILABLE


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hwm_mb(pid: int | str = "self") -> float:
    """A process's peak resident set (VmHWM), MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Peer:
    """llama-server on a free loopback port, ready once its /health says so."""

    def __init__(self, binary: str, args: list[str]) -> None:
        path = Path(binary)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise PeerError(
                f"--peer {binary}: not an executable file; build one with "
                "scripts/build-llama-server.sh (it prints the path)"
            )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [str(path), *args, "--host", "127.0.0.1", "--port", str(self.port)]
        # its log (a pipe would fill and stall it); closed in close()
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*self.args, "--no-webui"], stdout=subprocess.DEVNULL, stderr=self.log, text=True
        )
        deadline = time.monotonic() + PEER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                why = self.log.read().strip()
                last = why.splitlines()[-1] if why else f"exit {self.proc.returncode}"
                raise PeerError(f"--peer {binary} did not start: {last}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:  # noqa: S310
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.close()
        raise PeerError(f"--peer {binary} was not ready within {PEER_START_S:g} s")

    def rss_mb(self) -> float:
        return hwm_mb(self.proc.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
