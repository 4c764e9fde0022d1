"""The sentence splitter: token pieces in, speakable chunks out (pure)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assistant.speech.sentences import SentenceSplitter, speakable, split_all


def tokens(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize(
    ("text", "chunks"),
    [
        (
            "The capital of France is Paris. It is known for the Eiffel Tower.",
            ["The capital of France is Paris.", "It is known for the Eiffel Tower."],
        ),
        # the first chunk ends at the first clause once it has a few words
        (
            "Well, the answer depends on the weather, and on you. Bring a coat.",
            ["Well, the answer depends on the weather,", "and on you.", "Bring a coat."],
        ),
        ("Pi is about 3.14 and e is 2.72. Both are irrational.",
         ["Pi is about 3.14 and e is 2.72.", "Both are irrational."]),
        ("Bring fruit, e.g. apples or pears. Dr. Smith agrees.",
         ["Bring fruit, e.g. apples or pears.", "Dr. Smith agrees."]),
        ("I met J. R. R. Tolkien once. He was kind.",
         ["I met J. R. R. Tolkien once.", "He was kind."]),
        ("You need:\n1. eggs\n2. flour\n3. milk\nThen mix.",
         ["You need:", "1. eggs", "2. flour", "3. milk", "Then mix."]),
        ("Steps:\n- **Boil** the water\n- Add *salt*\n\n## Serving\nEnjoy!",
         ["Steps:", "Boil the water", "Add salt", "Serving", "Enjoy!"]),
        ("Here is code:\n```python\nprint('x = 1.5. y')\n```\nThat prints it.",
         ["Here is code:", "That prints it."]),
        ("See https://www.python.org/downloads/ for more. Or [the docs](https://docs.python.org).",
         ["See python.org for more.", "Or the docs."]),
        ("Great question! 😀 Let's go.", ["Great question!", "Let's go."]),
        ("Is it? Yes! Really...", ["Is it?", "Yes!", "Really..."]),
        ("no final punctuation here", ["no final punctuation here"]),
        # a long first sentence: the first chunk ends before a conjunction
        ("The sky is blue because air scatters blue light more. That is Rayleigh scattering.",
         ["The sky is blue", "because air scatters blue light more.",
          "That is Rayleigh scattering."]),
        ("I like it because yes.", ["I like it because yes."]),
        # ... or before a word that opens a phrase (the stand-in model's answer, greedy)
        ("Bee honey is made by bees using their bodies to extract pollen from flowers.",
         ["Bee honey is made by bees", "using their bodies to extract pollen from flowers."]),
        ("The capital of France is Paris.", ["The capital of France is Paris."]),
        ("```\nonly code\n```", []),
        ("Use `pip install x` & wait.", ["Use pip install x and wait."]),
        # Mandarin: sentence ends without spaces; a long first clause at its comma
        ("巴黎是法国的首都，也是最大的城市。它位于塞纳河畔！你去过吗？",
         ["巴黎是法国的首都，", "也是最大的城市。", "它位于塞纳河畔！", "你去过吗？"]),
        ("你好，我是助手。很高兴认识你；有什么事吗？",
         ["你好，我是助手。", "很高兴认识你；", "有什么事吗？"]),
        ("他说：「明天见。」然后走了。", ["他说：「明天见。」", "然后走了。"]),
        ("Paris 是法国的首都。", ["Paris 是法国的首都。"]),
    ],
)  # fmt: skip
def test_chunks(text: str, chunks: list[str]) -> None:
    assert split_all(tokens(text)) == chunks
    # whole, a sentence end is in sight before the first clause boundary is taken
    # (Mandarin chunks join without spaces: compare without them)
    assert "".join("".join(split_all([text])).split()) == "".join("".join(chunks).split())


def test_the_first_chunk_comes_before_the_sentence_ends() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Sure, I can help with that") == []  # "Sure," is too short alone
    assert splitter.feed(", here is how") == ["Sure, I can help with that,"]
    assert splitter.feed(" it works, step") == []  # later chunks wait for a sentence end
    assert splitter.feed(" by step. Next") == ["here is how it works, step by step."]
    assert splitter.flush() == ["Next"]


def test_a_decimal_split_across_tokens_is_not_a_sentence_end() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("It costs about 3.") == []
    assert splitter.feed("5 euros. Cheap") == ["It costs about 3.5 euros."]


def test_very_long_text_without_punctuation_is_cut_at_a_space() -> None:
    chunks = split_all(tokens("word " * 100), max_chars=60)
    assert all(len(c) <= 60 for c in chunks) and len(chunks) > 5
    assert " ".join(chunks).split() == ["word"] * 100


@given(st.text(max_size=300))
def test_nothing_speakable_is_lost_or_invented(text: str) -> None:
    chunks = split_all(tokens(text, 4))
    assert all(c == speakable(c) and c for c in chunks)
    if "`" not in text:  # code blocks are dropped on purpose
        # words, not punctuation: a line holding only punctuation has nothing to say and is
        # dropped, while the whole text's cleaned form keeps it beside its neighbours
        said = re.sub(r"\W", "", speakable(text))
        assert re.sub(r"\W", "", "".join(chunks)) == said or len(chunks) > 1


def test_long_mandarin_without_punctuation_is_cut_at_a_comma() -> None:
    text = "这是一个很长的句子" * 20 + "，" + "没有句号" * 10
    chunks = split_all(tokens(text), max_chars=200)
    assert "".join(chunks) == text and all(len(c) <= 200 for c in chunks)
    assert chunks[0].endswith("，")


def test_piper_says_long_text_in_pieces_cut_at_sentences_then_spaces() -> None:
    """piper's memory grows with the square of what it says at once (tts.PIECE_CHARS):
    longer text goes to it in pieces, at sentence ends first; short text in one call."""
    from types import SimpleNamespace

    from assistant.speech.tts import PIECE_CHARS, PiperTTS

    said: list[str] = []

    class Voice:
        config = SimpleNamespace(espeak_voice="en-us", sample_rate=22050)

        def synthesize(self, text: str, syn_config: object) -> list[SimpleNamespace]:
            said.append(text)
            return [SimpleNamespace(audio_int16_bytes=b"\0\0" * len(text))]

    tts = PiperTTS("voice.onnx")
    tts._voice = Voice()
    sentence = "The quick brown fox jumps over the lazy dog near the river bank today."
    long = " ".join([sentence] * 4) + " " + "and then it ran on " * 12
    audio = b"".join(tts.synthesize(long))
    assert len(said) > 4 and all(len(piece) <= PIECE_CHARS for piece in said), said
    assert said[0] == sentence and " ".join(said).split() == long.split()
    assert len(audio) == 2 * sum(len(p) for p in said)
    said.clear()
    assert b"".join(tts.synthesize(sentence)) and said == [sentence]


def test_a_sentence_too_long_to_say_at_once_is_cut_at_its_last_clause_mark() -> None:
    """Over max_chars, a sentence is cut after its last comma within them (where a speaker
    pauses) rather than between two words; with no comma late enough, at a space."""
    text = (
        "Once upon a time, a dragon named Ember lived high on a misty mountain, "
        "far above a quiet village where nobody had ever seen her fly."
    )
    chunks = split_all(tokens(text), max_chars=100, first_min_chars=1000)  # no early chunk
    assert chunks[0] == "Once upon a time, a dragon named Ember lived high on a misty mountain,"
    assert " ".join(chunks) == text
    early = "Yes, " + "the dragon flew over the hills and rivers and forests " * 2 + "today."
    chunks = split_all(tokens(early), max_chars=100, first_min_chars=1000)
    assert not chunks[0].endswith(",") and len(chunks[0]) <= 100 and len(chunks[0]) > 80
