"""Text length in words that mean the same in every script, for the minimum-length rules of `generate`.

A word is a run of letters or digits between spaces or punctuation. Scripts written without spaces between
words count differently: each Han character or kana is one word (a Chinese word is one or two characters, so
a 6-character summary counts 6, never "too short" next to a two-word English one; Korean puts spaces between
its words and is counted as spaced text), and Thai, Lao, Khmer and Myanmar, whose words run together in
longer letters, count one word per 4 characters.
"""

from __future__ import annotations

import re
import unicodedata

_PER_CHARACTER = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_UNSPACED = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff]")  # Thai, Lao, Myanmar, Khmer
_UNSPACED_CHARS_PER_WORD = 4


def word_count(text: str) -> int:
    """Words in `text`, in the unit above (see the module docstring)."""
    per_char = len(_PER_CHARACTER.findall(text))
    unspaced = len(_UNSPACED.findall(text))
    rest = _UNSPACED.sub(" ", _PER_CHARACTER.sub(" ", text))
    spaced = sum(1 for token in re.split(r"\s+", rest) if any(unicodedata.category(char)[0] in "LN" for char in token))
    return spaced + per_char + -(-unspaced // _UNSPACED_CHARS_PER_WORD)
