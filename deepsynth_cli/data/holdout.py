"""Carve validation and test splits out of one local file's rows (`generate --holdout VAL,TEST`).

A row's split follows from its text alone: the SHA-256 of the normalised text, read as a number in [0, 1), falls
below VAL (validation), below VAL + TEST (test) or above (train). So the carving is the same on every run, every
machine and any `--num-shards`, and identical texts always land in the same split: a corpus with duplicates never
has a document in train and its copy in test. The normalisation is Unicode NFC, then every run of whitespace
(Python's `\\s`: spaces, tabs, newlines, Unicode spaces) becomes one space, and the ends are trimmed; case and
punctuation are kept, so only texts that read the same are one. The summary plays no part.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

SOURCE_SPLIT = "train"
"""The split a holdout carves from: a local source must have this one split, and no other."""

KEY = "sha256 of the text: Unicode NFC, whitespace runs to one space, ends trimmed"
_WHITESPACE = re.compile(r"\s+")


class _HasText(Protocol):
    @property
    def text(self) -> str: ...


D = TypeVar("D", bound=_HasText)


def normalized(text: str) -> str:
    """The text as the holdout compares it (see the module docstring)."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def position(text: str) -> float:
    """Where `text` falls in [0, 1): the first 8 bytes of the SHA-256 of its normalised UTF-8, over 2**64. A lone
    surrogate (not a character, but possible in JSON) is hashed as its code unit rather than failing."""
    digest = hashlib.sha256(normalized(text).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Holdout:
    """Fractions of the rows carved out as validation and test; the rest stays train."""

    validation: float
    test: float

    @classmethod
    def of(cls, fractions: Sequence[float] | None) -> Holdout | None:
        """From a config's (VAL, TEST), or None when there is no holdout."""
        return None if fractions is None else cls(float(fractions[0]), float(fractions[1]))

    def split_of(self, text: str) -> str:
        """The split a row of this text belongs to."""
        where = position(text)
        if where < self.validation:
            return "validation"
        if where < self.validation + self.test:
            return "test"
        return SOURCE_SPLIT

    def splits(self) -> list[str]:
        """The splits the carving gives, train first; a fraction of 0 gives no split."""
        carved = [name for name, share in (("validation", self.validation), ("test", self.test)) if share > 0]
        return [SOURCE_SPLIT, *carved]

    def select(self, documents: Iterable[D], split: str) -> Iterator[D]:
        """The documents of one split, in source order."""
        return (document for document in documents if self.split_of(document.text) == split)

    def describe(self) -> dict[str, Any]:
        """What the manifest and the fingerprint record."""
        return {"validation": self.validation, "test": self.test, "key": KEY}


def parse_fractions(value: Any) -> Any:
    """`"0.05,0.05"` (the flag) or a two-item list (YAML) as a pair of floats; anything else is left to the
    validator, which says what is wrong."""
    wrong = ValueError(f"holdout takes two fractions VAL,TEST such as 0.05,0.05, not {value!r}")
    if isinstance(value, str):
        try:
            value = tuple(float(part) for part in value.split(","))
        except ValueError:
            raise wrong from None
    if isinstance(value, list | tuple) and len(value) != 2:
        raise wrong
    return value


def check_fractions(fractions: tuple[float, float]) -> tuple[float, float]:
    """Each fraction in [0, 1), at least one above 0, and their sum below 1 (some rows stay train)."""
    validation, test = fractions
    if not (0 <= validation < 1 and 0 <= test < 1) or validation + test >= 1 or validation + test == 0:
        raise ValueError(
            f"holdout {validation:g},{test:g}: give VAL,TEST fractions in [0, 1), not both 0, summing below 1 "
            "(e.g. 0.05,0.05)"
        )
    return fractions
