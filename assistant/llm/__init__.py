"""The language model: one llama.cpp engine and the conversation around it."""

from .conversation import Chat, ChatML, Conversation, Prompt, Turn, fit_turns
from .engine import Engine, Generation, GenerationStats, Sampling, is_degenerate
from .gguf import GGUFInfo, read_gguf

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
