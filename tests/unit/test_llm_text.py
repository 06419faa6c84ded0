"""Stop strings across token boundaries and incremental detokenization (streamed == whole text)."""
from __future__ import annotations

import pytest

from runtime.llm.detokenizer import IncrementalDetokenizer, detokenize
from runtime.llm.stop import StopMatcher

TOKENS = [b"Hel", b"lo", b" w", b"\xc3", b"\xa9", b"rld", b" \xf0\x9f", b"\x99\x82", b"!", b"<|eot_id|>"]
SPECIAL = frozenset({9})


def stream(deltas: list[str], stops: tuple[str, ...]) -> tuple[str, bool]:
    matcher, out = StopMatcher(stops), []
    for delta in deltas:
        text, hit = matcher.feed(delta)
        out.append(text)
        if hit:
            return "".join(out), True
    return "".join(out) + matcher.flush(), False


def test_detokenizer_holds_split_characters_and_skips_specials():
    detok = IncrementalDetokenizer(TOKENS, SPECIAL)
    deltas = [detok.add(t) for t in range(len(TOKENS))] + [detok.flush()]
    assert deltas[3] == "" and deltas[4] == "é"  # the first byte of é waits for the second
    assert deltas[6] == " " and deltas[7] == "🙂"
    assert deltas[9] == ""
    assert "".join(deltas) == "Hello wérld 🙂!" == detokenize(range(len(TOKENS)), TOKENS, SPECIAL)


def test_detokenizer_flushes_an_incomplete_character_as_replacement():
    assert detokenize([0, 3], TOKENS, SPECIAL) == "Hel\ufffd"


@pytest.mark.parametrize("stop, expected", [
    ("lo w", "Hel"),       # spans three tokens
    ("o", "Hell"),
    ("rld 🙂", "Hello wé"),
    ("Hello", ""),
])
def test_stop_string_split_across_tokens_is_cut_and_never_emitted(stop, expected):
    deltas = ["Hel", "lo", " w", "é", "rld", " ", "🙂", "!"]
    assert stream(deltas, (stop,)) == (expected, True)


def test_partial_match_is_held_then_released():
    matcher = StopMatcher(("STOP",))
    assert matcher.feed("abc ST") == ("abc ", False)  # "ST" may start STOP: held back
    assert matcher.feed("AR") == ("STAR", False)      # it did not
    assert matcher.feed("xS") == ("x", False)
    assert matcher.flush() == "S"


def test_earliest_of_several_stop_strings_wins():
    assert stream(["one tw", "o three"], ("three", "two", "zzz", "e t")) == ("on", True)


def test_no_stop_strings_passes_text_through():
    assert stream(["a", "b"], ()) == ("ab", False)
