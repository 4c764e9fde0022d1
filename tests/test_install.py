"""scripts/install.sh names the step that failed and its fix (stubbed tools, nothing changed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_a_failing_step_is_named_with_its_fix(tmp_path: Path) -> None:
    """apt-get failing in step 1 (the first step that changes anything): one line naming
    step 1 and what to do, exit non-zero, and nothing after it runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub(bin_dir, "id", 'if [ "$1" = -u ]; then echo 0; else /usr/bin/id "$@"; fi')
    stub(bin_dir, "systemctl", "exit 0")
    stub(bin_dir, "apt-get", "echo 'E: could not reach the mirror' >&2; exit 100")
    stub(bin_dir, "useradd", f"touch {tmp_path}/useradd-ran; exit 0")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "install.sh"), "--no-start"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    (line,) = [ln for ln in done.stderr.splitlines() if "failed" in ln]
    assert line.startswith("install.sh: step 1 (apt packages) failed (line "), line
    assert "exit 100" in line and "--no-apt" in line, line
    assert not (tmp_path / "useradd-ran").exists()
