"""The Pi's architecture, checked on this x86 machine (scripts/test-arm64.sh runs it).

1. **Flags**: the llama.cpp CMake flags install.sh gives a Raspberry Pi 5, read out of
   install.sh itself, so the check cannot drift from what the Pi gets.
2. **Root**: a Raspberry Pi OS-like Debian Bookworm arm64 root (Python 3.11, glibc 2.36):
   ``debootstrap --foreign`` downloads the packages, which are unpacked with ``dpkg-deb``
   (nothing runs inside it; no chroot, no binfmt handler).
3. **Dependencies**: every runtime dependency of the Pi's install (``.[pi,whisper]``),
   pinned as pip resolves them, is looked up for cp311 manylinux aarch64 (glibc 2.36) on
   PyPI: a wheel, or an sdist. An sdist is built here; when the result is pure Python it
   works on the Pi as it is, else it compiles on the Pi and is listed with the apt packages
   install.sh gives it.
4. **llama.cpp**: llama-cpp-python cross-compiled for aarch64 with exactly those flags
   (Debian's ``g++-aarch64-linux-gnu``); its CPU library is checked for the A76's dot
   product instructions.
5. **Run**: the project, the wheels and the stand-in models under ``qemu-aarch64 -cpu
   cortex-a76 -L ROOT`` (the A76's dotprod and fp16): ``ask``, ``say``, ``transcribe`` of
   that WAV, ``doctor`` and ``bench pi``, with llama.cpp's own report of the CPU features
   it uses.

The root, the wheels and the cross-built llama-cpp-python are cached under
``$XDG_CACHE_HOME/qwen-assistant/arm64`` keyed by what they are made from. The result is
``build/arm64/result.json`` (tests/test_arm64.py reads it); each step's time is printed.
Exit status: 0 when everything passed, 1 otherwise (the result says what failed).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
#: what the root holds besides Debian's essential set: Python, OpenMP (llama.cpp), the
#: libraries the wheels load (PortAudio for sounddevice, libsystemd for sd_notify)
ROOT_PACKAGES = (
    "python3.11",
    "libpython3.11-stdlib",
    "libgomp1",
    "libportaudio2",
    "libsystemd0",
    "ca-certificates",
)
#: pip's platform tags for a Raspberry Pi OS Bookworm wheel: manylinux up to glibc 2.36
PLATFORMS = [f"manylinux_2_{minor}_aarch64" for minor in range(36, 16, -1)] + [
    "manylinux2014_aarch64",
    "linux_aarch64",
]
QEMU_CPU = "cortex-a76"  # the Pi 5's core: ARMv8.2-A with dotprod and fp16
#: /proc/cpuinfo as a Pi 5 shows it (four Cortex-A76, part 0xd0b). qemu-user passes the
#: host's x86 /proc/cpuinfo through, and onnxruntime's cpuinfo library, parsing that as an
#: ARM one, crashes on import (SIGSEGV); the emulator's -L prefix serves this one instead.
PI5_FEATURES = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
    "dcpop asimddp"
)
#: packages that compile on the Pi: the apt packages install.sh's step 1 gives them
COMPILES = {
    "llama-cpp-python": ("build-essential", "cmake", "pkg-config", "python3-dev"),
    "systemd-python": ("build-essential", "pkg-config", "libsystemd-dev", "python3-dev"),
}
DEFAULT_APT = ("build-essential", "python3-dev")  # for any other C extension
#: the Pi's extras: lgpio for the GPIO, faster-whisper for the offline mirror's model
EXTRAS = ("pi", "whisper")


def log(message: str) -> None:
    print(f"==> arm64: {message}", flush=True)


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)


def key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


class Check:
    def __init__(self, cache: Path, out: Path) -> None:
        self.cache = cache
        self.out = out
        self.timings: dict[str, float] = {}
        self.result: dict[str, Any] = {"platform": "cp311 manylinux_2_36_aarch64", "ok": False}
        self.pip = [sys.executable, "-m", "pip"]

    def timed(self, name: str, func: Any, *args: Any) -> Any:
        began = time.monotonic()
        try:
            return func(*args)
        finally:
            self.timings[name] = round(time.monotonic() - began, 1)
            log(f"{name}: {self.timings[name]} s")

    # -- 1. flags ------------------------------------------------------------------------
    def flags(self) -> str:
        text = (REPO / "scripts" / "install.sh").read_text()
        match = re.search(r'"\$pi5" = 1 \]; then\s*\n(?:\s*#.*\n)*\s*cmake_args="([^"]+)"', text)
        if not match:
            raise SystemExit("arm64_check: install.sh has no Raspberry Pi 5 cmake_args line")
        return match.group(1)

    # -- 2. root -------------------------------------------------------------------------
    def root(self) -> Path:
        root = self.cache / f"root-{key(SUITE, ROOT_PACKAGES)}"
        if (root / ".complete").exists():
            self.result["root_cached"] = True
            return root
        self.result["root_cached"] = False
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        done = run(
            ["debootstrap", "--foreign", "--arch=arm64", "--variant=minbase",
             f"--include={','.join(ROOT_PACKAGES)}", SUITE, str(root), MIRROR]
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"arm64_check: debootstrap failed: {done.stderr.strip()[-400:]}")
        for deb in sorted((root / "var" / "cache" / "apt" / "archives").glob("*.deb")):
            run(["dpkg-deb", "-x", str(deb), str(root)]).check_returncode()
        (root / ".complete").write_text(SUITE)
        return root

    def pi5_cpu(self, root: Path) -> None:
        """The Pi 5's /proc/cpuinfo and CPU lists, where the emulated process looks first."""
        block = (
            "processor\t: {n}\nBogoMIPS\t: 108.00\nFeatures\t: " + PI5_FEATURES + "\n"
            "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\n"
            "CPU part\t: 0xd0b\nCPU revision\t: 1\n"
        )
        (root / "proc").mkdir(exist_ok=True)
        (root / "proc" / "cpuinfo").write_text("\n".join(block.format(n=n) for n in range(4)))
        cpus = root / "sys" / "devices" / "system" / "cpu"
        cpus.mkdir(parents=True, exist_ok=True)
        for name in ("possible", "present", "online"):
            (cpus / name).write_text("0-3\n")

    # -- 3. dependencies -----------------------------------------------------------------
    def requirements(self) -> list[str]:
        project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
        reqs = list(project["dependencies"])
        for extra in EXTRAS:
            reqs += project["optional-dependencies"][extra]
        return reqs

    def pinned(self, reqs: list[str]) -> dict[str, str]:
        """name → version, as pip resolves the Pi's requirements (on this machine's index,
        markers for Python 3.11)."""
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            done = run(
                [*self.pip, "install", "--dry-run", "--ignore-installed", "--quiet",
                 "--report", str(report), *reqs]
            )  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"arm64_check: pip could not resolve: {done.stderr[-600:]}")
            data = json.loads(report.read_text())
        return {
            re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower(): item["metadata"]["version"]
            for item in data["install"]
        }

    def lookup(self, name: str, version: str, wheels: Path) -> dict[str, Any]:
        """One dependency on the Pi: its aarch64 wheel, a pure-Python build of its sdist, or
        a package that compiles there."""
        row: dict[str, Any] = {"name": name, "version": version}
        platform = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
        done = run(
            [*self.pip, "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
             *platform, "-d", str(wheels), f"{name}=={version}"]
        )  # fmt: skip
        if done.returncode == 0:
            row["kind"] = "wheel"
            return row
        if name in COMPILES:  # built here (llama-cpp-python) or only listed
            return {**row, "kind": "compiles", "apt": list(COMPILES[name])}
        with tempfile.TemporaryDirectory() as tmp:
            built = run(
                [*self.pip, "wheel", "--quiet", "--no-deps", "--no-binary", name,
                 "-w", tmp, f"{name}=={version}"]
            )  # fmt: skip
            files = list(Path(tmp).glob("*.whl"))
            if built.returncode != 0 or not files:
                return {**row, "kind": "missing", "error": built.stderr.strip()[-300:]}
            if _pure(files[0]):
                _retag(files[0], wheels, "py3-none-any")
                return {**row, "kind": "sdist, pure Python"}
        return {**row, "kind": "compiles", "apt": list(DEFAULT_APT)}

    def deps(self) -> tuple[list[dict[str, Any]], dict[str, str], Path]:
        """Every dependency looked up for aarch64 (downloads: it runs beside the cross build)."""
        reqs = self.requirements()
        pins = self.pinned(reqs)
        wheels = self.cache / f"wheels-{key(pins, PLATFORMS)}"
        wheels.mkdir(parents=True, exist_ok=True)
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            rows = list(pool.map(lambda nv: self.lookup(*nv, wheels), sorted(pins.items())))
        return rows, pins, wheels

    def site(self, pins: dict[str, str], wheels: Path, llama_wheel: Path) -> Path:
        """Every wheel for aarch64 installed in one directory, the cross-built llama-cpp-python
        among them."""
        site = self.cache / f"site-{key(pins, PLATFORMS, llama_wheel.name)}"
        if not (site / ".complete").exists():
            shutil.rmtree(site, ignore_errors=True)
            files = [str(p) for p in wheels.glob("*.whl") if not p.name.startswith("llama_cpp")]
            platform = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
            done = run(
                [*self.pip, "install", "--quiet", "--no-deps", "--only-binary=:all:",
                 "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                 *platform, "--target", str(site), *files, str(llama_wheel)]
            )  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"arm64_check: installing the wheels failed: {done.stderr}")
            (site / ".complete").write_text("ok")
        return site

    # -- 4. llama.cpp --------------------------------------------------------------------
    def llama(self, flags: str, version: str) -> Path:
        gcc = run(["aarch64-linux-gnu-gcc", "-dumpfullversion"]).stdout.strip()
        out = self.cache / f"llama-{key(version, flags, gcc)}"
        self.result["llama"] = {"version": version, "flags": flags, "gcc": gcc}
        wheel = next(out.glob("*.whl"), None)
        self.result["llama"]["cached"] = wheel is not None
        if wheel is None:
            cross = (
                "-DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 "
                "-DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc "
                "-DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++"
            )
            env = {
                **os.environ,
                "CMAKE_ARGS": f"{flags} {cross}",
                "CMAKE_BUILD_PARALLEL_LEVEL": "2",
            }
            # the sources scripts/lib.sh downloaded once for every build (test-arm64.sh
            # passes them), else PyPI's
            sdist = os.environ.get("QA_LLAMA_SDIST") or f"llama-cpp-python=={version}"
            with tempfile.TemporaryDirectory() as tmp:
                done = run(
                    [*self.pip, "wheel", "--quiet", "--no-deps", "--no-cache-dir",
                     "--no-binary", "llama-cpp-python", "-w", tmp, sdist],
                    env=env,
                )  # fmt: skip
                built = next(Path(tmp).glob("*.whl"), None)
                if done.returncode != 0 or built is None:
                    raise SystemExit(f"arm64_check: the cross build failed: {done.stderr[-1500:]}")
                out.mkdir(parents=True, exist_ok=True)
                wheel = _retag(built, out, "py3-none-linux_aarch64")
        self.result["llama"].update(_inspect_llama(wheel))
        return wheel

    # -- 5. run under qemu ---------------------------------------------------------------
    def stage(self, root: Path, site: Path) -> tuple[list[str], dict[str, str], Path]:
        """The project beside the wheels, the stand-in models, the emulator's command line."""
        home = root / "home" / "pi"
        project = self.cache / "project"
        shutil.rmtree(project, ignore_errors=True)
        run(
            [*self.pip, "install", "--quiet", "--no-deps", "--target", str(project), str(REPO)]
        ).check_returncode()
        models = home / ".local" / "share" / "qwen-assistant" / "models"
        shutil.rmtree(models, ignore_errors=True)
        _link_tree(_host_models(), models)
        (home / "out").mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "PYTHONPATH": f"{project}:{site}",
            "LANG": "C.UTF-8",
            "HF_HUB_OFFLINE": "1",
        }
        qemu = ["qemu-aarch64", "-cpu", QEMU_CPU, "-L", str(root), str(root / "usr/bin/python3.11")]
        return qemu, env, home / "out"

    def emulate(self, root: Path, site: Path) -> dict[str, Any]:
        qemu, env, out = self.stage(root, site)
        runs: dict[str, Any] = {}
        wav = out / "paris.wav"

        def step(name: str, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
            began = time.monotonic()
            try:
                done = run([*qemu, *args], env=env, timeout=timeout, cwd=str(out))
            except subprocess.TimeoutExpired:
                done = subprocess.CompletedProcess(args, -1, "", f"timed out after {timeout} s")
            took = round(time.monotonic() - began, 1)
            runs[name] = {
                "rc": done.returncode,
                "seconds": took,
                "stdout": done.stdout[-4000:],
                "stderr": done.stderr[-2000:],
            }
            self.timings[f"qemu {name}"] = took
            log(f"{name}: exit {done.returncode} in {took} s")
            return done

        # two at a time (qemu runs a process on one core while it imports, which is most of a
        # step); transcribe hears what say wrote, so they run in that order
        # (the longest first). bench pi runs on the smallest model: under emulation only its
        # path and format count, and the stand-in's answer is what `ask` proves
        small = next(out.parent.glob(".local/share/qwen-assistant/models/SmolLM2-*.gguf"), None)
        model = ["--model", str(small)] if small is not None else []
        chains: list[list[tuple[str, ...]]] = [
            [("ask", "-m", "assistant", "ask", "What is the capital of France?")],
            [("say", "-m", "assistant", "say", "The capital of France is Paris.", "-o", str(wav)),
             ("transcribe", "-m", "assistant", "transcribe", str(wav))],
            [("bench_pi", "-m", "assistant", "bench", "pi", "--json", "--threads", "1,2",
              "--tokens", "4", "--short", *model)],
            [("doctor", "-m", "assistant", "doctor")],
            [("machine", "-c", "import platform, sys; print(platform.machine(), sys.version)")],
            [("llama_system_info", "-c",
              "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())")],
        ]  # fmt: skip
        wav.unlink(missing_ok=True)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for _ in pool.map(lambda chain: [step(*s) for s in chain], chains):
                pass
        return runs

    # -- all -----------------------------------------------------------------------------
    def main(self) -> int:
        self.out.unlink(missing_ok=True)  # no stale verdict
        try:
            return self._main()
        except SystemExit as exc:  # a step that could not run: the verdict says which
            if isinstance(exc.code, int | None):
                raise
            self.result.update(error=str(exc.code), timings=self.timings)
            self.result["ok"] = {"all": False}
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text(json.dumps(self.result, indent=1))
            print(exc.code, file=sys.stderr)
            return 1

    def _main(self) -> int:
        began = time.monotonic()
        flags = self.timed("flags", self.flags)
        self.result["flags"] = flags
        version = _llama_version()
        # the downloads (the root, the dependencies) run while the cross build compiles
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            root_job = pool.submit(self.timed, "root", self.root)
            deps_job = pool.submit(self.timed, "dependencies", self.deps)
            wheel = self.timed("llama cross build", self.llama, flags, version)
            root = root_job.result()
            rows, pins, wheels = deps_job.result()
        self.pi5_cpu(root)
        self.result["deps"] = rows
        site = self.timed("site", self.site, pins, wheels, wheel)
        self.result["runs"] = self.timed("emulation", self.emulate, root, site)
        self.result["timings"] = self.timings
        self.result["total_s"] = round(time.monotonic() - began, 1)
        self.result["ok"] = _verdict(self.result)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.result, indent=1))
        print(summary(self.result))
        return 0 if self.result["ok"]["all"] else 1


def _pure(wheel: Path) -> bool:
    """No compiled code inside (a wheel that is Python only, whatever its tag says)."""
    with zipfile.ZipFile(wheel) as zf:
        return not any(n.endswith((".so", ".pyd", ".dylib")) or ".so." in n for n in zf.namelist())


def _retag(wheel: Path, dest: Path, tag: str) -> Path:
    """A copy of ``wheel`` with its platform tag replaced (its files unchanged)."""
    name, version = wheel.name.split("-")[:2]
    target = dest / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith(".dist-info/WHEEL"):
                lines = [ln for ln in data.decode().splitlines() if not ln.startswith("Tag:")]
                lines.append(f"Tag: {tag}")
                data = ("\n".join(lines) + "\n").encode()
            dst.writestr(item, data)
    return target


def _inspect_llama(wheel: Path) -> dict[str, Any]:
    """The cross-built libraries: their machine, and the A76's dot product instructions."""
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp)
        libs = sorted(Path(tmp).rglob("*.so"))
        cpu = next((p for p in libs if "ggml-cpu" in p.name), None)
        machines = {
            run(["readelf", "-h", str(p)]).stdout.split("Machine:")[-1].split("\n")[0].strip()
            for p in libs
        }
        sdot = 0
        if cpu is not None:
            dump = run(["aarch64-linux-gnu-objdump", "-d", str(cpu)]).stdout
            sdot = len(re.findall(r"\t[su]dot\t", dump))
        return {
            "wheel": wheel.name,
            "libraries": [p.name for p in libs],
            "machine": sorted(machines),
            "dotprod_instructions": sdot,
        }


def _llama_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return "0.3.36"


def _host_models() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "qwen-assistant" / "models"


def _link_tree(src: Path, dest: Path) -> None:
    """Hard links of the installed models (a copy where links cannot be made)."""
    if not (src / "manifest.json").exists():
        raise SystemExit(f"arm64_check: no models in {src}: run `qwen-assistant models fetch`")
    for path in src.rglob("*"):
        if path.is_dir() or path.name.endswith(".part") or "/.unzip-" in str(path):
            continue
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def _doctor_rows(text: str) -> dict[str, str]:
    rows = {}
    for line in text.splitlines():
        match = re.match(r"(OK|WARN|FAIL)\s+(\S+)\s+(.*)", line)
        if match:
            rows.setdefault(match.group(2), f"{match.group(1)} {match.group(3)}")
    return rows


def _verdict(r: dict[str, Any]) -> dict[str, bool]:
    runs = r["runs"]
    rows = _doctor_rows(runs["doctor"]["stdout"])
    r["doctor_rows"] = rows
    try:
        bench = json.loads(runs["bench_pi"]["stdout"])
    except ValueError:
        bench = {}
    ok = {
        "flags_compile": "aarch64" in " ".join(r["llama"]["machine"]).lower()
        and r["llama"]["dotprod_instructions"] > 0,
        "deps_resolve": all(d["kind"] != "missing" for d in r["deps"]),
        "machine": runs["machine"]["stdout"].startswith("aarch64"),
        "dotprod_in_use": "DOTPROD = 1" in runs["llama_system_info"]["stdout"],
        "ask": runs["ask"]["rc"] == 0 and "Paris" in runs["ask"]["stdout"],
        "say": runs["say"]["rc"] == 0,
        "transcribe": runs["transcribe"]["rc"] == 0
        and "paris" in runs["transcribe"]["stdout"].lower(),
        "doctor": all(rows.get(k, "").startswith("OK") for k in ("model", "stt", "voice", "wake")),
        "bench_pi": bench.get("device", {}).get("machine") == "aarch64"
        and [row["threads"] for row in bench.get("rows", [])] == [1, 2],
    }
    ok["all"] = all(ok.values())
    return ok


def summary(r: dict[str, Any]) -> str:
    verdict = "passed" if r["ok"]["all"] else "FAILED"
    lines = [f"arm64 check ({r['platform']}, qemu -cpu {QEMU_CPU}): {verdict}"]
    lines += [f"  {'ok  ' if v else 'FAIL'} {k}" for k, v in r["ok"].items() if k != "all"]
    kinds: dict[str, list[str]] = {}
    for d in r["deps"]:
        kinds.setdefault(d["kind"], []).append(f"{d['name']} {d['version']}")
    for kind, names in sorted(kinds.items()):
        lines.append(f"  {kind} ({len(names)}): {', '.join(names)}")
    for d in r["deps"]:
        if d["kind"] == "compiles":
            lines.append(f"  on the Pi, {d['name']} compiles with apt: {' '.join(d['apt'])}")
    lines.append("  times: " + ", ".join(f"{k} {v} s" for k, v in r["timings"].items()))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    parser.add_argument("--cache", type=Path, default=cache_home / "qwen-assistant" / "arm64")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "arm64" / "result.json")
    parser.add_argument(
        "--prepare",
        action="store_true",
        help="only the downloads (the root and the dependencies), into the cache: "
        "scripts/test.sh runs this while llama.cpp compiles",
    )
    args = parser.parse_args()
    check = Check(args.cache, args.out)
    if args.prepare:
        check.timed("root", check.root)
        check.timed("dependencies", check.deps)
        return 0
    return check.main()


if __name__ == "__main__":
    sys.exit(main())
