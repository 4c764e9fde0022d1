"""Speech: piper text-to-speech and audio output (microphone and STT come with the voice loop)."""
