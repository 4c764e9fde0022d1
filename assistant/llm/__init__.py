"""The language model: one llama.cpp engine and the conversation around it."""

from .conversation import Chat, ChatML, Conversation, Prompt, Turn, fit_turns
from .engine import Engine
from .gguf import GGUFInfo, read_gguf
from .policy import Generation, GenerationStats, Sampling, is_degenerate

__all__ = [
    "Chat",
    "ChatML",
    "Conversation",
    "Engine",
    "GGUFInfo",
    "Generation",
    "GenerationStats",
    "Prompt",
    "Sampling",
    "Turn",
    "fit_turns",
    "is_degenerate",
    "read_gguf",
]
