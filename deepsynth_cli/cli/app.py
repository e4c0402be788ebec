"""The root `deepsynth` app: global flags and one module per command (errors: `cli/boundary.py`)."""

from __future__ import annotations

from typing import Annotated

import typer

from deepsynth_cli import __version__, processes
from deepsynth_cli.cli import eval as eval_cmd
from deepsynth_cli.cli import generate, serve, train, validate
from deepsynth_cli.cli.options import DATASETS_CONTEXT, FLAG, Help

app = typer.Typer(
    name="deepsynth",
    help="Render documents into page images and fine-tune DeepSeek-OCR-2 to summarise them.",
    no_args_is_help=True,
    add_completion=False,
    # Locals in tracebacks could show a token; tracebacks only appear with DEEPSYNTH_DEBUG=1 anyway.
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"deepsynth {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", metavar=FLAG, callback=_version, is_eager=True, help="Show the version and exit."),
    ] = False,
    help_: Help = False,
) -> None:
    """deepsynth: optical compression for summarisation."""


app.command("generate", no_args_is_help=False)(generate.command)
app.command("train", no_args_is_help=True, context_settings=DATASETS_CONTEXT)(train.command)
app.command("validate", no_args_is_help=False, context_settings=DATASETS_CONTEXT)(validate.command)
app.command("serve", no_args_is_help=True)(serve.command)
app.command("eval", no_args_is_help=True, context_settings=DATASETS_CONTEXT)(eval_cmd.command)


def main() -> None:
    processes.sigterm_as_interrupt()  # SIGTERM stops a run as Ctrl-C does: clean exit 130, work kept, no orphans
    app(prog_name="deepsynth")


if __name__ == "__main__":
    main()
