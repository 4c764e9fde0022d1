"""Home Assistant's door: the device's speech-to-text, text-to-speech, wake phrase and Qwen
as one Wyoming service (``[wyoming]`` in config.toml, docs/homeassistant.md)."""
