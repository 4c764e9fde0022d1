"""The [llm] section: the model, its context and threads, how llama.cpp computes attention
and stores the KV cache, the system prompt and the sampling."""

from __future__ import annotations

from dataclasses import dataclass

from .fields import opt

__all__ = ["FLASH_ATTN", "KV_TYPES", "LLM"]

FLASH_ATTN = ("off", "on", "auto")
#: KV cache types llama.cpp's CPU backend stores (ggml type names)
KV_TYPES = ("f16", "bf16", "q8_0", "q5_1", "q5_0", "q4_1", "q4_0")


@dataclass(frozen=True)
class LLM:
    model: str = opt("auto", path=True)
    n_ctx: int = opt(2048, lo=512, hi=32768)
    n_threads: int = opt(0, lo=0, hi=64)
    n_threads_batch: int = opt(0, lo=0, hi=64)
    n_batch: int = opt(256, lo=8, hi=4096)
    #: answers decoded together in one batch (a voice turn gets a lane beyond these)
    parallel: int = opt(2, lo=1, hi=16)
    gpu_layers: int = opt(0, lo=-1, hi=999)
    vulkan_devices: str = opt("")
    #: the decode threads' nice value: when they contend for the cores, piper's first sound,
    #: the recognizer, the wake word (and any other program at nice 0) go first (0: none)
    decode_nice: int = opt(10, lo=0, hi=19)
    #: llama.cpp's flash attention: "off", "on", "auto" (llama.cpp decides per device)
    flash_attn: str = opt("auto", choices=FLASH_ATTN)
    #: the KV cache's type, for K and V alike (a quantized V needs flash attention)
    kv_type: str = opt("f16", choices=KV_TYPES)
    mmap: bool = opt(True)
    mlock: bool = opt(False)
    system_prompt: str = opt(
        "You are a friendly voice assistant running offline on a small robot. "
        "Answer in {language}, in one to three short spoken sentences. "
        "Do not use lists, markdown or emoji."
    )
    max_tokens: int = opt(256, lo=1, hi=8192)
    max_seconds: float = opt(60.0, lo=1.0, hi=3600.0)
    temperature: float = opt(0.4, lo=0.0, hi=2.0)
    top_p: float = opt(0.5, lo=0.01, hi=1.0)
    top_k: int = opt(40, lo=0, hi=1000)
    repeat_penalty: float = opt(1.1, lo=1.0, hi=2.0)
    seed: int = opt(-1, lo=-1, hi=2**31 - 1)
    repetition_abort_tokens: int = opt(64, lo=0, hi=4096)

    @property
    def unified_cache(self) -> bool:
        """One KV cache for every sequence: with flash attention, whose kernel skips the
        cells of other sequences (without it, attention would compute over all of them)."""
        return self.flash_attn != "off"

    def lanes(self, hot_parallel: int) -> int:
        """Answers decoded together at most: ``hot_parallel`` (thermal.hot_parallel, while
        the heat budget binds) where the unified cache lets more answers share its cells,
        else llm.parallel."""
        return max(self.parallel, hot_parallel) if self.unified_cache else self.parallel

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.max_tokens > self.n_ctx - 64:
            problems.append(
                (
                    "max_tokens",
                    f"must leave at least 64 tokens of llm.n_ctx "
                    f"({self.n_ctx}) for the prompt, got {self.max_tokens}",
                )
            )
        if self.vulkan_devices and not all(
            part.strip().isdigit() for part in self.vulkan_devices.split(",")
        ):
            problems.append(
                (
                    "vulkan_devices",
                    f'must be "" or Vulkan device indices such as "0" or "0,1", '
                    f"got {self.vulkan_devices!r}",
                )
            )
        if self.n_batch > self.n_ctx:
            problems.append(
                ("n_batch", f"must not exceed llm.n_ctx ({self.n_ctx}), got {self.n_batch}")
            )
        if self.model not in ("auto", "") and not self.model.endswith(".gguf"):
            problems.append(
                ("model", f'must be "auto" or a path to a .gguf file, got {self.model!r}')
            )
        if 0 < self.repetition_abort_tokens < 16:
            problems.append(
                (
                    "repetition_abort_tokens",
                    f"must be 0 (off) or at least 16, got {self.repetition_abort_tokens}",
                )
            )
        if self.kv_type != "f16" and self.flash_attn == "off":
            problems.append(
                (
                    "kv_type",
                    f"a {self.kv_type} KV cache needs flash attention: set llm.flash_attn = "
                    f'"auto" or "on", or llm.kv_type = "f16"',
                )
            )
        return problems
