"""`deepsynth train`: fine-tune DeepSeek-OCR-2 (or the tiny preset) on rendered datasets."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deepsynth_cli.cli.boundary import error_boundary
from deepsynth_cli.cli.console import Output
from deepsynth_cli.cli.options import FLAG, ConfigFile, Datasets, Help, JsonOutput, dataset_names
from deepsynth_cli.cli.progress import LiveEvents

if TYPE_CHECKING:
    from deepsynth_cli.training.events import Event, TrainReport

_PLAIN_EVERY_S = 10.0
_OPTIM = "Optimisation"
_RUN = "Checkpoints and evaluation"


def command(
    ctx: typer.Context,
    datasets: Datasets = None,
    model: Annotated[
        str | None, typer.Option(help="Preset (deepseek-ocr-2, tiny), checkpoint folder or Hub id.")
    ] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Checkpoints and the final model go here.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Optimiser steps.", rich_help_panel=_OPTIM)] = None,
    epochs: Annotated[
        float | None, typer.Option(help="Passes over the data (instead of --max-steps).", rich_help_panel=_OPTIM)
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Rows per forward pass.", rich_help_panel=_OPTIM)] = None,
    grad_accum_steps: Annotated[
        int | None, typer.Option(help="Forward passes per optimiser step.", rich_help_panel=_OPTIM)
    ] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Peak learning rate.", rich_help_panel=_OPTIM)] = None,
    weights: Annotated[
        list[float] | None,
        typer.Option(
            "--weight",
            metavar="WEIGHT",
            help="Sampling weight per dataset, in order (repeatable).",
            rich_help_panel=_OPTIM,
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="auto (default: float32 weights + bf16 autocast on a bf16 GPU, fp16 + loss scaling on other GPUs, "
            "float32 on CPU), no (float32), bf16, fp16, or bf16-pure (bf16 weights: most small updates round away).",
            rich_help_panel=_OPTIM,
        ),
    ] = None,
    lora: Annotated[
        bool,
        typer.Option(
            "--lora",
            metavar=FLAG,
            help="Train LoRA adapters on the language model's linear layers (lr 2e-4 unless given).",
            rich_help_panel=_OPTIM,
        ),
    ] = False,
    routed_experts: Annotated[
        str | None,
        typer.Option(
            help="MoE routed experts: train (in full; default without --lora), freeze (default with --lora), or "
            "lora (adapters on the fused expert tensors; needs --lora).",
            rich_help_panel=_OPTIM,
        ),
    ] = None,
    projector: Annotated[
        str | None,
        typer.Option(
            help="Multi-modal projector and view separator: train (default) or freeze (deepseek-ocr-2 preset: "
            "freeze); with --lora they train in full beside the adapters.",
            rich_help_panel=_OPTIM,
        ),
    ] = None,
    activation_checkpointing: Annotated[
        bool,
        typer.Option(
            "--activation-checkpointing",
            metavar=FLAG,
            help="Recompute activations in the backward pass: less memory, about a third more compute.",
            rich_help_panel=_OPTIM,
        ),
    ] = False,
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile", metavar=FLAG, help="torch.compile the model (the first steps compile).", rich_help_panel=_OPTIM
        ),
    ] = False,
    seed: Annotated[int | None, typer.Option(help="Seed of weights, data order and dropout.")] = None,
    save_every: Annotated[int | None, typer.Option(help="Checkpoint every N steps.", rich_help_panel=_RUN)] = None,
    eval_every: Annotated[
        int | None,
        typer.Option(
            help="Evaluate on the validation split every N steps and after the last one (0: only after the last; "
            "default 200). The best evaluation's checkpoint is kept.",
            rich_help_panel=_RUN,
        ),
    ] = None,
    no_eval: Annotated[
        bool,
        typer.Option(
            "--no-eval", metavar=FLAG, help="Never evaluate, even with a validation split.", rich_help_panel=_RUN
        ),
    ] = False,
    report_to: Annotated[
        list[str] | None,
        typer.Option(
            "--report-to",
            metavar="TRACKER",
            help="Experiment tracker: tensorboard, wandb, mlflow, ... (repeatable); local logs in OUTPUT_DIR/logs.",
            rich_help_panel=_RUN,
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", metavar=FLAG, help="Continue from the latest checkpoint in --output-dir.")
    ] = False,
    resume_from: Annotated[Path | None, typer.Option(help="Continue from this checkpoint folder.")] = None,
    push_to_hub: Annotated[
        str | None,
        typer.Option(
            "--push-to-hub",
            metavar="REPO",
            help="After the final save, push the model with a model card to this Hub model repo (OWNER/NAME, or "
            "NAME under HF_USERNAME; token from HF_TOKEN).",
            rich_help_panel=_RUN,
        ),
    ] = None,
    hub_private: Annotated[
        bool, typer.Option("--private", metavar=FLAG, help="Create the model repo private.", rich_help_panel=_RUN)
    ] = False,
    config: ConfigFile = None,
    json_output: JsonOutput = False,
    help_: Help = False,
) -> None:
    """Fine-tune a model on rendered pages to write their summaries.

    Resumable (--resume). Whenever the datasets have a validation split, the run evaluates on it every 200 steps
    (--eval-every) and after the last step, and keeps the best evaluation's checkpoint (--no-eval: never).
    """
    output = Output(json_output)
    with error_boundary(output):
        names = dataset_names(datasets, ctx)
        overrides: dict[str, Any] = {
            "data.datasets": names or None,
            "data.weights": weights or None,
            "model.model": model,
            "output_dir": output_dir,
            "optim.max_steps": max_steps,
            "optim.epochs": epochs,
            "optim.batch_size": batch_size,
            "optim.grad_accum_steps": grad_accum_steps,
            "optim.lr": learning_rate,
            "optim.seed": seed,
            "precision": precision,
            "lora": {} if lora else None,
            "trainable.routed_experts": routed_experts,
            "trainable.projector": {"train": True, "freeze": False}.get(projector or "", projector),
            "activation_checkpointing": activation_checkpointing or None,
            "compile": compile_model or None,
            "report_to": report_to or None,
            "checkpoint.every": save_every,
            "eval.every": eval_every,
            "eval.enabled": False if no_eval else None,
            "resume": resume or None,
            "resume_from": resume_from,
            "push_to_hub": push_to_hub,
            "hub_private": hub_private or None,
        }
        _train(output, config, overrides)


def _train(output: Output, config: Path | None, overrides: Mapping[str, object]) -> None:
    from deepsynth_cli.services import train
    from deepsynth_cli.training.config import load_train_config

    cfg = load_train_config(config, overrides)
    with TrainProgress(output) as progress:
        report = train.run(cfg, progress)
    if report.process_index != 0:
        return  # `accelerate launch`: the other processes trained too; process 0 speaks for the run
    _report(output, report)


def _report(output: Output, report: TrainReport) -> None:
    if output.json_mode:
        output.json(report.to_dict())
        return
    loss = f"{report.final_loss:.4f}" if report.final_loss is not None else "-"
    output.line(f"trained {report.steps} steps ({report.samples} samples, {report.seconds:.1f} s), final loss {loss}")
    if report.evaluations:
        last = report.evaluations[-1]
        rouge = f"{last['rougeL']:.4f}" if last["rougeL"] is not None else "-"
        vloss = f"{last['loss']:.4f}" if last["loss"] is not None else "-"
        output.line(f"validation at step {last['step']}: loss {vloss}, ROUGE-L {rouge}")
        for found in last.get("ablation") or []:
            output.line(f"  {pages_line(found)}")
    if report.best_checkpoint:
        output.line(f"best checkpoint: {report.best_checkpoint}")
    output.line(f"final model: {report.final_model}")
    if report.pushed_to:
        output.line(f"pushed to: {report.pushed_to}")


def pages_line(found: dict[str, Any]) -> str:
    """One line of a pixel ablation (`training.loop.pixel_ablation`): mean loss per condition and the verdict."""
    losses = ", ".join(f"{condition} {scores['loss']['mean']:.4f}" for condition, scores in found["conditions"].items())
    verdict = "reads its pages" if found["reads"] else "no sign that it reads its pages"
    return f"pages ({found['language']}, {found['rows']} rows): loss on {losses}: {verdict}"


class TrainProgress(LiveEvents):
    """Shows `train` events: a live bar with loss, lr, samples/s, tokens/s and GPU memory on a terminal, plain
    lines elsewhere (every few seconds), nothing in JSON mode. Prints trainable/total parameters at the start."""

    def __call__(self, event: Event) -> None:
        from deepsynth_cli.training.events import CheckpointSaved, Evaluated, Notice, Started, StepDone

        if self.output.json_mode:
            return
        if isinstance(event, Started):
            share = 100.0 * event.trainable_params / event.total_params if event.total_params else 0.0
            compute = f"autocast {event.autocast}" if event.autocast else "no autocast"
            self._say(
                f"{event.model}: {event.trainable_params:,} trainable / {event.total_params:,} parameters "
                f"({share:.2f} %) on {event.device} x{event.processes}, weights {event.weights_dtype}, {compute}"
            )
            if event.resumed_from is not None:
                self._say(f"resumed from {event.resumed_from} at step {event.start_step}")
            if self._progress is not None:
                self._task = self._progress.add_task(
                    "training", total=event.max_steps, completed=event.start_step, stats=""
                )
        elif isinstance(event, StepDone):
            memory = f" {event.memory_gib:.1f} GiB" if event.memory_gib is not None else ""
            experts = ""
            if event.moe_max_share is not None and event.moe_entropy is not None:
                experts = f" experts max {event.moe_max_share:.2f} H {event.moe_entropy:.2f}"
            stats = (
                f"loss {event.loss:.4f} lr {event.lr:.2e} {event.samples_per_s:.2f} samples/s "
                f"{event.tokens_per_s:.0f} tok/s{memory}{experts}"
            )
            if self._progress is not None:
                self._progress.update(self._task, completed=event.step, stats=stats)
            elif time.perf_counter() - self._last_line >= _PLAIN_EVERY_S or event.step == event.max_steps:
                self._last_line = time.perf_counter()
                self.output.notice(f"step {event.step}/{event.max_steps}: {stats}")
        elif isinstance(event, Evaluated):
            loss = f"{event.loss:.4f}" if event.loss is not None else "-"
            rouge = f"{event.rouge_l:.4f}" if event.rouge_l is not None else "-"
            self._say(
                f"step {event.step}: validation loss {loss}, ROUGE-L {rouge}" + (" (best)" if event.improved else "")
            )
            for found in event.ablation:
                self._say(f"step {event.step}: {pages_line(found)}")
        elif isinstance(event, CheckpointSaved):
            self._say(f"saved {event.path}")
        elif isinstance(event, Notice):
            self._say(event.message)
