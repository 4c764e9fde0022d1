"""The one llama.cpp model of the process, streaming tokens for several answers at once.

llama_cpp is imported only inside :meth:`Engine.load`, so everything else (and most tests)
runs without it. Generation stops between tokens when cancelled, at ``max_tokens``, after
``max_seconds`` of wall clock, and when the output degenerates into a loop.

Intensity: with an :class:`~assistant.thermal.actors.Intensity` (the thermal governor's
thread and pacing levers), the engine applies a change of threads between tokens
(``llama_set_n_threads`` takes effect at the next ``llama_decode``; with ``llm.flash_attn``
"off" a greedy answer's text does not depend on it) and idles after each token while
pacing is below 1.

Batching: up to ``llm.parallel`` answers are decoded together by the engine's
:class:`~.batch.Scheduler` (one ``llama_decode`` per step for all of them; a voice answer
gets a lane even when the API holds all of them), and up to ``thermal.hot_parallel``
while the heat budget binds (:meth:`~assistant.config.LLM.lanes`; admission decides).

Prefix reuse: each sequence slot keeps the KV of what it last evaluated, and a new answer
takes the slot with the longest common prefix, or a copy of the system prompt's KV, which
:meth:`Engine.load` evaluates once. The conversation builds every prompt from the same
system-prompt tokens and the exact token ids of earlier answers, so a question only
prefills its own tokens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from ..config import LLM, Config, env_seed
from ..errors import GenerationError, ModelError
from ..memory import release_mapped
from ..thermal.actors import Intensity, engine_threads
from .backend import Backend, choose_backend, cpu_description
from .batch import Scheduler
from .context import make_context
from .conversation import Chat, ChatML, Conversation
from .gguf import FIX, GGUFInfo, read_gguf
from .grammar import Constraint, check_grammar
from .policy import Generation, Sampling
from .sequence import END, Rules, Seq, common_prefix, llama_seed
from .vocab import chatml_for

T = TypeVar("T")

__all__ = ["Engine"]

#: how many parsed grammars an engine remembers (the device's actions, a client's repeats)
PARSED_KEPT = 64

log = logging.getLogger(__name__)


class Engine:
    """Loads one GGUF model and generates from token ids, one generation at a time."""

    def __init__(
        self,
        settings: LLM,
        model_path: str | Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        models_dir: str | Path | None = None,
        intensity: Intensity | None = None,
        hot_parallel: int = 0,
    ) -> None:
        self.settings = settings
        #: answers decoded together at most (llm.parallel, or thermal.hot_parallel)
        self.lanes = settings.lanes(hot_parallel)
        #: the governor's thread and pacing levers (None: always full)
        self.intensity = intensity
        self._threads_version = -1
        self.model_path = Path(model_path)
        self.clock = clock
        #: the manifest the file is checked against (None: no size/sha256 check)
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self.sha256 = ""  # known once loaded with a models_dir
        self.backend = Backend("CPU", "", 0)  # where load() put the model
        self.canary_s = 0.0  # seconds load() spent on the canary (and the system prompt)
        self.sampling = Sampling.from_config(settings)
        self.info: GGUFInfo | None = None
        self.load_s = 0.0
        self._llama: Any = None
        self._fmt: ChatML | None = None
        self._stop_ids: frozenset[int] = frozenset()
        #: Qwen's <tool_call> token (None when the vocabulary has no such single token)
        self.tool_call_id: int | None = None
        self._lock = threading.Lock()
        self.scheduler: Scheduler | None = None  # the decode loop (running once loaded)
        #: grammars llama.cpp parsed for this model (the device's actions: checked once)
        self._parsed: set[str] = set()

    @classmethod
    def from_config(
        cls, config: Config, model: str | Path | None = None, intensity: Intensity | None = None
    ) -> Engine:
        """An engine for ``model``, else llm.model, else what `models fetch` installed."""
        from ..models.store import resolve_model

        return cls(
            config.llm,
            Path(model) if model else resolve_model(config),
            models_dir=config.paths.models_dir,
            intensity=intensity,
            hot_parallel=config.thermal.hot_parallel,
        )

    def new_chat(self, system_prompt: str | None = None) -> Chat:
        """A fresh conversation whose system prompt is already in the KV cache."""
        prompt = self.settings.system_prompt if system_prompt is None else system_prompt
        conversation = Conversation(self.chat_format, prompt, self.settings.n_ctx)
        if self._in_kv_cache(conversation.prefix) < len(conversation.prefix):
            self.warm(conversation.prefix)
        return Chat(self, conversation, self.settings.max_tokens)

    def warm_system(self, system_prompt: str) -> None:
        """Put the start of every turn's prompt (``system_prompt``) in the KV cache."""
        self.new_chat(system_prompt)

    # -- lifecycle ---------------------------------------------------------------------
    def load(self) -> None:
        """Validate the file, check it is what was installed, load it, run the canary.

        ModelError names the file and the fix.
        """
        start = self.clock()
        self.info = read_gguf(self.model_path)
        if "<|im_start|>" not in self.info.chat_template:
            raise ModelError(
                f"{self.model_path}: its chat template is not ChatML; qwen-assistant "
                "runs ChatML models (Qwen2.5, SmolLM2); " + FIX
            )
        if self.models_dir is not None:
            from ..models.integrity import check_model_file
            from ..models.store import ModelStore

            self.sha256 = check_model_file(self.model_path, ModelStore(self.models_dir)).sha256
        s = self.settings
        # before llama_cpp is imported: the choice may set GGML_VK_VISIBLE_DEVICES
        self.backend = choose_backend(s.gpu_layers, s.vulkan_devices)
        if self.backend.fallback:
            log.warning("%s", self.backend.fallback)
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelError(
                f"llama-cpp-python is not installed ({exc}); run scripts/setup.sh"
            ) from None
        threads, batch_threads = engine_threads(s)
        seed = self.seed
        try:
            self._llama = Llama(
                model_path=str(self.model_path),
                n_ctx=s.n_batch,  # a small first context: make_context makes the real one
                n_batch=s.n_batch,
                n_ubatch=s.n_batch,
                n_threads=threads,
                n_threads_batch=batch_threads,
                n_gpu_layers=self.backend.gpu_layers,
                use_mmap=s.mmap,
                use_mlock=s.mlock,
                seed=llama_seed(seed),
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(
                f"{self.model_path}: llama.cpp could not load it ({exc}); {FIX}"
            ) from None
        release_mapped(self.model_path)  # what no answer reads is no longer ours (memory.py)
        try:
            make_context(self._llama, s, self.model_path, self.lanes)
        except ModelError:
            self._llama = None
            raise
        if self.intensity is None:  # no governor: always full, never paced
            self.intensity = Intensity(threads, batch_threads)
            self._threads_version = self.intensity.version
        if self.backend.name == "CPU":
            self.backend = replace(self.backend, device=cpu_description())
        self._fmt = self._chatml()
        self._stop_ids = frozenset({self._llama.token_eos(), self._fmt.im_end})
        ids = self._llama.tokenize(b"<tool_call>", add_bos=False, special=True)
        self.tool_call_id = int(ids[0]) if len(ids) == 1 else None
        lead, nice = self._lead, s.decode_nice
        rules = Rules(self._llama, self.stop_ids, lambda: self.seed, self._intensity, lead, nice)
        self.scheduler = Scheduler(
            rules, parallel=s.parallel, lanes=self.lanes, n_ctx=s.n_ctx, clock=self.clock
        )
        self._canary()
        self.load_s = self.clock() - start

    def _canary(self) -> None:
        """A few greedy tokens of a fixed prompt must look like a language model's."""
        from .canary import PROMPT, run_canary

        fmt = self.chat_format
        begun = self.clock()
        prefix = Conversation(fmt, self.settings.system_prompt, self.settings.n_ctx).prefix
        n = len(prefix)
        # the system prompt alone is the fixed prompt: start-up evaluates it anyway, so the
        # canary costs only its decode steps (the model goes on with the next turn's header)
        prompt = prefix or [*fmt.message("user", PROMPT), *fmt.header("assistant")]
        # the system prompt stays in the KV cache: new_chat() need not evaluate it again
        try:
            problem = self.alone(lambda llama: run_canary(llama, prompt, self._stop_ids, keep=n))
        except BaseException:
            self.close()
            raise
        self.canary_s = self.clock() - begun
        if problem:
            self.close()
            raise ModelError(
                f"{self.model_path}: the load-time canary failed: {problem}; the weights are "
                f"damaged (zeroed or corrupt); {FIX}"
            )

    def close(self) -> None:
        with self._lock:
            if self.scheduler is not None:
                self.scheduler.close()
                self.scheduler = None
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    @property
    def llama(self) -> Any:
        """The llama_cpp.Llama, to read (its tokenizer, its settings) or reset between answers;
        a loop that evaluates tokens runs through :meth:`alone`. The slots forget their cache."""
        llama = self._loaded()
        if self.scheduler is not None:
            self.scheduler.invalidate()
        return llama

    def alone(self, fn: Callable[[Any], T]) -> T:
        """``fn(llama)`` on the decode thread between two steps, the context to itself (the
        canary, a benchmark's bare loop); the slots then forget their cached tokens. Every
        ``llama_decode`` runs on that one thread (:class:`~.batch.Scheduler` says why)."""
        scheduler, llama = self.scheduler, self._loaded()
        if scheduler is None:
            raise GenerationError("the model is not loaded")
        try:
            value: T = scheduler.call(lambda: fn(llama))
            return value
        finally:
            scheduler.invalidate()

    def _loaded(self) -> Any:
        if self._llama is None:
            raise GenerationError("the model is not loaded")
        return self._llama

    @property
    def failure(self) -> str:
        """Why the engine can no longer answer ("" while it can): its decode loop died."""
        return self.scheduler.failure if self.scheduler is not None else ""

    def check_grammar(self, constraint: Constraint) -> None:
        """ValueError when llama.cpp could not decode under ``constraint`` (see
        :func:`~assistant.llm.grammar.check_grammar`)."""
        llama = self._loaded()
        check_grammar(llama, constraint, self._parsed)
        if len(self._parsed) < PARSED_KEPT:
            self._parsed.add(constraint.gbnf)

    @property
    def chat_format(self) -> ChatML:
        if self._fmt is None:
            raise GenerationError("the model is not loaded")
        return self._fmt

    @property
    def stop_ids(self) -> frozenset[int]:
        """Token ids that end an answer (end-of-sequence and ChatML's <|im_end|>)."""
        return self._stop_ids

    @property
    def seed(self) -> int:
        """The sampling seed: $QWEN_ASSISTANT_SEED when set, else llm.seed (-1: a new one)."""
        fixed = env_seed()
        return self.settings.seed if fixed is None else fixed

    @property
    def threads(self) -> int:
        return int(self._loaded().n_threads)

    def set_threads(self, threads: int, batch_threads: int) -> None:
        """Threads for decode and for prompt evaluation from the next ``llama_decode`` on."""
        llama = self._loaded()
        llama._ctx.set_n_threads(threads, batch_threads)
        llama.n_threads, llama.n_threads_batch = threads, batch_threads

    def _intensity(self) -> Intensity:
        """The governor's levers, taken up between tokens (cheap when nothing changed)."""
        intensity = self.intensity
        if intensity is None:
            raise GenerationError("the model is not loaded")
        if intensity.version != self._threads_version:
            self._threads_version = intensity.version
            state = intensity.state
            self.set_threads(state.decode_threads, state.batch_threads)
        return intensity

    def _chatml(self) -> ChatML:
        add_bos = bool(self.info and self.info.metadata.get("tokenizer.ggml.add_bos_token", False))
        return chatml_for(self._llama, add_bos, self.model_path)

    def warm(self, tokens: Sequence[int]) -> None:
        """Evaluate ``tokens`` (a system prompt) into sequence 0 now, between two batch
        steps, so every later prompt copies them instead of evaluating them."""
        scheduler = self.scheduler
        if scheduler is None:
            raise GenerationError("the model is not loaded")
        scheduler.call(lambda: scheduler.warm(list(tokens)))

    def _in_kv_cache(self, tokens: Sequence[int]) -> int:
        """How many leading ``tokens`` sequence 0 (the system prompt) holds."""
        llama = self._loaded()
        return common_prefix([int(t) for t in llama._input_ids[: llama.n_tokens]], tokens)

    # -- generation --------------------------------------------------------------------
    def generate(
        self,
        tokens: list[int],
        *,
        cancel: threading.Event | None = None,
        constraint: Constraint | None = None,
        priority: int = 1,
        sink: Callable[[str], bool] | None = None,
        **overrides: Any,
    ) -> Generation:
        """Stream text for ``tokens``. ``overrides`` replace Sampling fields; caps never grow.

        With a ``constraint`` the JSON part streams as :class:`JsonPiece` and ends the
        answer (``stop_reason`` "tool_call" for a lazy one, "stop" otherwise). ``priority``
        0 (voice) keeps a lane in the batch when every lane is taken. With a ``sink``, each
        piece goes to ``sink(piece)`` on the decode thread (return False to stop) and
        iterating only waits for the end."""
        sampling = replace(self.sampling, **{k: v for k, v in overrides.items() if v is not None})
        sampling = replace(
            sampling,
            max_tokens=min(sampling.max_tokens, self.settings.max_tokens),
            max_seconds=min(sampling.max_seconds, self.settings.max_seconds),
        )
        if len(tokens) + sampling.max_tokens > self.settings.n_ctx:
            raise GenerationError(
                f"prompt of {len(tokens)} tokens + max_tokens "
                f"{sampling.max_tokens} exceeds llm.n_ctx {self.settings.n_ctx}"
            )
        generation = Generation()
        seq = Seq(generation, tokens, sampling, cancel or threading.Event(), constraint, priority)
        seq.sink = sink
        generation._pieces = self._run(seq)
        return generation

    def _lead(self, constraint: Constraint | None, gen: Generation, token: int) -> list[int] | None:
        """None while ``token`` is free text; else the tokens to keep before the JSON:
        Qwen's <tool_call> and a newline, or nothing (a ``{`` is re-sampled under the
        grammar, as is the first token of a constraint that starts now)."""
        if constraint is None:
            return None
        if constraint.start == "now":
            return []
        if token == self.tool_call_id:
            return [token, *self.chat_format.encode("\n")]
        if gen.token_ids or gen.text.strip():
            return None
        return [] if self._loaded().detokenize([token]).lstrip().startswith(b"{") else None

    def _run(self, seq: Seq) -> Iterator[str]:
        """Hand the answer to the decode loop and pass its pieces on. Closing early (a stop
        string, a client gone) takes it out of the batch before returning."""
        scheduler, gen = self.scheduler, seq.gen
        if scheduler is None:
            raise GenerationError("the model is not loaded")
        submitted = False
        try:
            scheduler.submit(seq)
            submitted = True
            while True:
                item = seq.out.get()
                if item is END:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if submitted and not seq.done.is_set():
                seq.left.set()
                scheduler.wake.set()
                seq.done.wait()
            for callback in gen._callbacks:
                callback(gen)
