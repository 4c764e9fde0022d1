"""Speech: sound in and out (audio), voice activity (vad), speech-to-text (stt: Vosk and
faster-whisper behind one Recognizer), wake words (wake), text-to-speech (tts: piper),
sentence cuts (sentences), the mouth that speaks while it synthesises (mouth), and the
wake-word and recognizer benches (bench)."""
