"""qwen-assistant: an offline voice and text assistant for the Raspberry Pi 5."""

__version__ = "0.1.0"
__all__ = ["__version__"]
