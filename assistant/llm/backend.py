"""Which llama.cpp backend runs the model: the CPU, or Vulkan on a named device.

``llm.gpu_layers`` > 0 asks for offloading. Before the model loads, the devices llama.cpp
would use are listed in a child process (``python -m assistant.llm.backend``): llama.cpp's
Vulkan backend throws from its initialisation for some inputs (an index in
``GGML_VK_VISIBLE_DEVICES`` that does not exist), and a C++ exception through its C API ends
the process, so the probe must not be this process. ``llm.vulkan_devices`` becomes
``GGML_VK_VISIBLE_DEVICES`` (llama.cpp skips CPU-type Vulkan devices such as Mesa's lavapipe
unless they are named there). When no GPU device is there, or the build has no GPU backend,
the engine loads on the CPU with one warning that says why, instead of failing.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Backend", "Device", "choose_backend", "cpu_description", "list_devices"]

#: ggml_backend_dev_type, in ggml-backend.h's order
KINDS = ("CPU", "GPU", "IGPU", "ACCEL", "META")
VISIBLE = "GGML_VK_VISIBLE_DEVICES"
PROBE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Device:
    name: str  # llama.cpp's name: "CPU", "Vulkan0"
    description: str  # e.g. "llvmpipe (LLVM 15.0.6, 256 bits)"
    kind: str  # one of KINDS


@dataclass(frozen=True)
class Backend:
    """What the engine runs on: ``name`` "CPU" or "Vulkan", the ``device`` description,
    the layers offloaded, and ``fallback``: why a requested GPU is not used ("" if it is)."""

    name: str
    device: str
    gpu_layers: int
    fallback: str = ""

    def describe(self) -> str:
        if self.name == "CPU":
            return f"CPU ({self.device})" if self.device else "CPU"
        return f"{self.name}: {self.device}, {self.gpu_layers} layers offloaded"


def list_devices() -> list[Device]:
    """The devices llama.cpp's backend registry holds, in this process (imports llama_cpp)."""
    import llama_cpp

    lib = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml.so"))
    lib.ggml_backend_dev_count.restype = ctypes.c_size_t
    lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    lib.ggml_backend_dev_get.restype = ctypes.c_void_p
    for fn in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
        getattr(lib, fn).restype = ctypes.c_char_p
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    found = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        kind = lib.ggml_backend_dev_type(dev)
        found.append(
            Device(
                (lib.ggml_backend_dev_name(dev) or b"").decode(errors="replace"),
                (lib.ggml_backend_dev_description(dev) or b"").decode(errors="replace"),
                KINDS[kind] if 0 <= kind < len(KINDS) else str(kind),
            )
        )
    return found


def cpu_description() -> str:
    """llama.cpp's name for this CPU ("AMD EPYC", "ARM Cortex-A76"), or ""."""
    try:
        return next((d.description for d in list_devices() if d.kind == "CPU"), "")
    except (OSError, AttributeError):
        return ""


def probe(visible: str) -> list[Device] | str:
    """The devices, listed by a child process with ``GGML_VK_VISIBLE_DEVICES=visible``;
    a string saying what went wrong when the child failed."""
    env = dict(os.environ)
    if visible:
        env[VISIBLE] = visible
    try:
        done = subprocess.run(
            [sys.executable, "-m", "assistant.llm._probe"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"listing the devices took over {PROBE_TIMEOUT_S:g} s"
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        why = next((line for line in lines if "ggml_vulkan" in line), lines[-1] if lines else "")
        return f"listing the devices failed ({why.strip() or f'exit {done.returncode}'})"
    try:
        return [Device(**d) for d in json.loads(done.stdout.strip().splitlines()[-1])]
    except (ValueError, TypeError, IndexError):
        return "listing the devices printed no list"


def choose_backend(gpu_layers: int, vulkan_devices: str, probed: Any = None) -> Backend:
    """Where the model runs, given ``llm.gpu_layers`` and ``llm.vulkan_devices``.

    ``probed`` replaces :func:`probe` (tests). Sets ``GGML_VK_VISIBLE_DEVICES`` in this
    process when a GPU is used, so llama.cpp here sees what the probe saw.
    """
    if gpu_layers == 0:
        return Backend("CPU", "", 0)
    devices = probed if probed is not None else probe(vulkan_devices)
    if isinstance(devices, str):
        return Backend("CPU", "", 0, f"{devices}; running on the CPU")
    gpus = [d for d in devices if d.kind in ("GPU", "IGPU")]
    if not gpus:
        if not any(d.name.startswith("Vulkan") for d in devices) and not vulkan_devices:
            why = (
                "this llama.cpp has no GPU backend or found no GPU (built for the CPU? "
                "scripts/setup.sh --vulkan builds one; a CPU-type Vulkan device such as "
                "lavapipe is used only when named in llm.vulkan_devices)"
            )
        else:
            why = (
                f'llama.cpp found no Vulkan device (llm.vulkan_devices = "{vulkan_devices}"; '
                "is a Vulkan driver installed? `vulkaninfo --summary` lists the devices)"
            )
        return Backend(
            "CPU", "", 0, f"llm.gpu_layers = {gpu_layers}, but {why}; running on the CPU"
        )
    if vulkan_devices:
        os.environ[VISIBLE] = vulkan_devices
    name = "Vulkan" if gpus[0].name.startswith("Vulkan") else gpus[0].name
    return Backend(name, f"{gpus[0].name} {gpus[0].description}", gpu_layers)
