"""The one output sink of the CLI: rich for people, one JSON object with `--json`, nothing extra on stdout.

Human output goes to stdout (results) and stderr (progress, notices, errors), so `deepsynth ... > file`
keeps only results. With `--json`, stdout holds exactly one JSON object and progress is silent.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table


class Output:
    def __init__(self, json_mode: bool = False) -> None:
        self.json_mode = json_mode
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        # Off a terminal rich assumes 80 columns and squeezes tables; logs and pipes can take wider lines.
        if not self.out.is_terminal:
            self.out.width = max(self.out.width, 120)

    @property
    def interactive(self) -> bool:
        """A person watches: draw live progress. Otherwise print plain lines."""
        return not self.json_mode and self.err.is_terminal

    def notice(self, message: str) -> None:
        if not self.json_mode:
            self.err.print(message, markup=False)

    def error(self, message: str, hint: str = "") -> None:
        """Errors always reach stderr, also in JSON mode (stdout stays parseable)."""
        self.err.print(f"[bold red]error:[/] {_escape(message)}")
        if hint:
            self.err.print(f"[yellow]hint:[/] {_escape(hint)}")

    def table(self, table: Table) -> None:
        if not self.json_mode:
            self.out.print(table)

    def line(self, message: str) -> None:
        if not self.json_mode:
            self.out.print(message, markup=False)

    def json(self, payload: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()


def _escape(text: str) -> str:
    return text.replace("[", "\\[")
