"""Start-up of `qwen-assistant run`, process start to READY=1, for two source trees side by side.

    .venv/bin/python scripts/bench-startup.py BEFORE_TREE AFTER_TREE [RUNS] [MODEL.gguf]

Each tree is a checkout (e.g. `git worktree add /tmp/before REV`); both run with this
python and its packages, alternating, RUNS times each (default 11), voice off, no thermal
sensor, with a datagram NOTIFY_SOCKET to see READY=1. Prints the medians and after/before.
The model defaults to what `models fetch` installed for the llm role.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def ready_after(tree: str, config: Path, work: Path, tag: str) -> float:
    path = work / f"notify-{tag}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(300)
    env = os.environ | {
        "PYTHONPATH": tree,
        "NOTIFY_SOCKET": str(path),
        "RUNTIME_DIRECTORY": str(work / f"run-{tag}"),
    }
    begun = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "run", "--config", str(config)],
        cwd=tree,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not sock.recv(4096).decode().startswith("READY=1"):
            pass
        return time.monotonic() - begun
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        sock.close()
        path.unlink()


def main() -> int:
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__ or "")
        return 64
    trees = {"before": sys.argv[1], "after": sys.argv[2]}
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 11
    model = sys.argv[4] if len(sys.argv) > 4 else "auto"
    work = Path(tempfile.mkdtemp())
    config = work / "config.toml"
    config.write_text(
        f'[llm]\nmodel = "{model}"\n[thermal]\nsensor_path = ""\n'
        "[api]\nport = 18123\n[voice]\nenabled = false\n"
    )
    times: dict[str, list[float]] = {name: [] for name in trees}
    for i in range(runs):
        for name, tree in trees.items():
            times[name].append(ready_after(tree, config, work, f"{name}{i}"))
    for name, values in times.items():
        print(
            f"{name:<7} median {statistics.median(values):.3f} s  "
            + " ".join(f"{v:.2f}" for v in values)
        )
    before, after = (statistics.median(times[k]) for k in ("before", "after"))
    print(f"after/before {after / before:.3f}  ({runs} alternating runs, {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
