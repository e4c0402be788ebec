"""Shows `generate` events: a live rich progress bar on a terminal, plain lines elsewhere, nothing in JSON mode."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from deepsynth_cli.cli.console import Output

if TYPE_CHECKING:
    from deepsynth_cli.services.generate import Event, PartsProgress

_PLAIN_EVERY_S = 10.0


def live_progress(output: Output, field: str) -> Progress:
    """The bar every long command shows on a terminal: description, bar, count, one text field, elapsed time."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{{task.fields[{field}]}}"),
        TimeElapsedColumn(),
        console=output.err,
        transient=False,
    )


class LiveEvents:
    """Base of the commands' event displays: a live bar (with one text `field`) on a terminal, plain lines
    elsewhere; subclasses turn their events into `_say` lines and bar updates."""

    field = "stats"

    def __init__(self, output: Output) -> None:
        self.output = output
        self._progress: Progress | None = None
        self._task: Any = None
        self._last_line = 0.0

    def __enter__(self) -> Any:
        if self.output.interactive:
            self._progress = live_progress(self.output, self.field)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def _say(self, message: str) -> None:
        """One line above the bar on a terminal, a notice elsewhere."""
        if self._progress is not None:
            self._progress.console.print(message, markup=False)
        else:
            self.output.notice(message)


class GenerateProgress:
    def __init__(self, output: Output) -> None:
        self.output = output
        self._progress: Progress | None = None
        self._task: Any = None
        self._started = 0.0
        self._docs = 0
        self._pages = 0
        self._last_line = 0.0
        self._label = ""

    def __enter__(self) -> GenerateProgress:
        if self.output.interactive:
            self._progress = live_progress(self.output, "rates")
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def _rates(self) -> str:
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        return f"{self._docs / elapsed:6.1f} docs/s {self._pages / elapsed:6.1f} pages/s"

    def __call__(self, event: Event) -> None:
        from deepsynth_cli.services.generate import Advanced, Notice, PartsProgress, ShardWritten, SplitStarted

        if self.output.json_mode:
            return
        if isinstance(event, SplitStarted):
            self._started, self._docs, self._pages = time.perf_counter(), 0, 0
            self._label = f"{event.dataset}/{event.split}"
            if self._progress is not None:
                self._task = self._progress.add_task(self._label, total=event.total, rates="")
            else:
                self.output.notice(f"{self._label}: started")
        elif isinstance(event, Advanced):
            self._docs += event.documents
            self._pages += event.pages
            if self._progress is not None:
                self._progress.update(self._task, advance=event.documents, rates=self._rates())
            elif time.perf_counter() - self._last_line >= _PLAIN_EVERY_S:
                self._last_line = time.perf_counter()
                self.output.notice(f"{self._label}: {self._docs} documents, {self._pages} pages, {self._rates()}")
        elif isinstance(event, PartsProgress):
            self._show_parts(event)
        elif isinstance(event, ShardWritten):
            message = f"{event.dataset}/{event.split}: wrote {event.path.name} ({event.rows} rows)"
            if self._progress is not None:
                self._progress.console.print(message, markup=False, style="dim")
            else:
                self.output.notice(message)
        elif isinstance(event, Notice):
            if self._progress is not None:
                self._progress.console.print(event.message, markup=False)
            else:
                self.output.notice(event.message)

    def _show_parts(self, event: PartsProgress) -> None:
        """Parts running as Ray tasks: one bar of parts done, with the rates of all of them together."""
        label = f"{event.dataset}: parts"
        if label != self._label:
            self._started, self._label = time.perf_counter(), label
            if self._progress is not None:
                self._task = self._progress.add_task(label, total=event.parts, rates="")
            else:
                self.output.notice(f"{label}: {event.parts} part(s) started")
        self._docs, self._pages = event.documents, event.pages
        rates = f"{self._rates()} {event.retries} retries"
        if self._progress is not None:
            self._progress.update(self._task, completed=event.parts_done, rates=rates)
        elif event.parts_done == event.parts or time.perf_counter() - self._last_line >= _PLAIN_EVERY_S:
            self._last_line = time.perf_counter()
            self.output.notice(
                f"{label}: {event.parts_done}/{event.parts} done, {self._docs} documents, {self._pages} pages, {rates}"
            )
