"""deepsynth: render documents into pages and fine-tune DeepSeek-OCR-2 to summarise what it sees."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deepsynth")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
