"""The training loop, written out: setup -> train -> save -> cleanup, as torchtune's recipes read.

    run = setup(cfg, emit, settings)   # accelerator, data, model, optimiser, schedule, resume: one `_Run`
    train_steps(run)                   # the steps below, with logging, evaluation and checkpoints
    save_final(run)                    # the final model (merged with LoRA) through the one `save_weights`
    return cleanup(run)                # trackers and process group closed; the report

One optimiser step:

    next rows of the mixed stream -> grad_accum_steps micro-batches (this process's share of each)
      -> count the target tokens of the whole step (all micro-batches, all processes)
      -> forward + backward per micro-batch, loss = sum of token losses / tokens of the step
      -> clip -> AdamW step -> schedule step -> maybe evaluate -> maybe checkpoint

Dividing by the tokens of the whole step (not averaging micro-batch means) makes the gradient the same whatever
the split into micro-batches and processes, which is what lets a resumed or re-batched run match. Everything the
next step depends on (weights, optimiser, schedule, RNG, data position) is in a checkpoint, so a resumed run
continues the same trajectory.

Nothing here prints: progress goes out as events (`training/events.py`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.data.rendered import read_manifest
from deepsynth_cli.data.store import DatasetLocation, resolve_dataset
from deepsynth_cli.errors import ConfigError, DatasetError, OutputError
from deepsynth_cli.inference.options import GenerationOptions
from deepsynth_cli.inference.summarizer import ModelLimits, save_model_limits, save_render_config
from deepsynth_cli.models.batching import IGNORE_INDEX, Batch, Batcher, Truncation, pixel_dtype
from deepsynth_cli.models.presets import Model, PresetInfo, Processor, load_model
from deepsynth_cli.settings import Settings
from deepsynth_cli.training import checkpoint as ckpt
from deepsynth_cli.training.config import TrainConfig
from deepsynth_cli.training.data import DataPosition, Row, TrainStream, eval_rows, split_rows
from deepsynth_cli.training.errors import TrainingError
from deepsynth_cli.training.events import (
    CheckpointSaved,
    Evaluated,
    EventSink,
    Notice,
    Started,
    StepDone,
    TrainReport,
)
from deepsynth_cli.training.moe import RouterLoad
from deepsynth_cli.training.optim import adamw, warmup_cosine
from deepsynth_cli.training.precision import PURE_BF16_NOTICE, RunPrecision, resolve_precision
from deepsynth_cli.training.trainable import (
    TRAINED_BASE_FILE,
    ParamCount,
    add_lora,
    apply_freezing,
    count_parameters,
    load_lora_weights,
    load_trained_base,
    train_mode,
    trained_base,
)

OOM_HINT = (
    "lower --batch-size (raise --grad-accum-steps to keep the effective batch), lower batching.max_pages or "
    "max_target_tokens, add --activation-checkpointing, or train less (--lora, --routed-experts freeze)"
)


@dataclass
class _Progress:
    """What the state file carries between runs, besides the tensors."""

    step: int = 0
    samples: int = 0
    tokens: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    best_step: int | None = None
    best_value: float | None = None
    evals_without_improvement: int = 0
    truncation: dict[str, int] = field(default_factory=dict)
    target_lengths: list[int] = field(default_factory=list)  # rows per target token count (EOS included)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Progress:
        known = {item.name for item in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in state.items() if key in known})


# ---------------------------------------------------------------------------------------------------------------
# Setup helpers


def _resume_point(cfg: TrainConfig, emit: EventSink) -> Path | None:
    if cfg.resume_from is not None:
        ckpt.read_state(cfg.resume_from)  # raises when it is not a checkpoint
        return cfg.resume_from
    latest = ckpt.latest_checkpoint(cfg.output_dir)
    if cfg.resume:
        if latest is None:
            emit(Notice(f"no checkpoint in {cfg.output_dir} yet: starting from the beginning"))
        return latest
    if latest is not None:
        raise OutputError(
            f"{cfg.output_dir} already holds checkpoints (latest {latest.name})",
            hint="pass --resume to continue that run, or choose another --output-dir",
        )
    return None


def _training_dtype(cfg: TrainConfig) -> str:
    # The weights the optimiser updates: float32 masters unless pure bf16 was asked for (training/precision.py).
    # Not the preset's `dtype`, which is how the model is loaded for inference.
    return "bfloat16" if cfg.precision == "bf16-pure" else "float32"


def _load(cfg: TrainConfig, resume: Path | None) -> tuple[Any, Processor, PresetInfo]:
    dtype = _training_dtype(cfg)
    full_weights = resume is not None and cfg.lora is None
    spec = cfg.model.model_copy(update={"model": str(resume)}) if full_weights else cfg.model
    model, processor, info = load_model(spec, dtype=dtype, seed=cfg.optim.seed)  # type: ignore[arg-type]
    if full_weights:
        info = dataclasses.replace(info, name=cfg.model.model, source=cfg.model.model)
    if cfg.lora is not None:
        model = add_lora(model, cfg.lora, experts=cfg.routed_experts == "lora")
    apply_freezing(model, cfg)
    if cfg.lora is not None and resume is not None:
        load_lora_weights(model, resume / "adapter_model.safetensors")
        load_trained_base(model, resume / TRAINED_BASE_FILE)
    if cfg.activation_checkpointing:
        checkpoint_activations(model)
    if cfg.compile:
        model.compile()  # in place: the module, its names and its saved weights stay as they were
    return model, processor, info


def _training_render(locations: Sequence[DatasetLocation], settings: Settings, say: EventSink) -> RenderConfig | None:
    """How the training pages were rendered (from the datasets' manifests), saved with the model so that text
    given to `serve` or `eval` later is rendered the same way. Datasets rendered differently get a notice."""
    found: list[tuple[str, RenderConfig]] = []
    for location in locations:
        manifest = read_manifest(location, settings)
        if manifest and isinstance(manifest.get("render"), dict):
            found.append((location.name, RenderConfig.model_validate(manifest["render"])))
    if not found:
        return None
    first_name, first = found[0]
    for name, render in found[1:]:
        if render != first:
            say(Notice(f"{name} was rendered with other settings than {first_name}; the model keeps {first_name}'s"))
    return first


def deepspeed_options(cfg: TrainConfig, environ: Mapping[str, str]) -> dict[str, Any]:
    """Accelerator keywords that make a DeepSpeed engine step once per optimiser step, not per micro-batch.

    Under `accelerate launch` with a DeepSpeed config the engine owns the optimiser step: it must be told the
    accumulation (`gradient_accumulation_steps` in its plugin), and accelerate's own count of micro-batches must
    match, for `accumulate` to mark the last one. A launcher config that sets another value is refused.
    Elsewhere: no keywords (the loop accumulates itself).
    """
    if environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() != "true":
        return {}
    steps = cfg.optim.grad_accum_steps
    configured = environ.get("ACCELERATE_GRADIENT_ACCUMULATION_STEPS")
    if configured is not None and configured != str(steps):
        raise ConfigError(
            f"the DeepSpeed launcher config sets gradient_accumulation_steps {configured} but this run accumulates "
            f"{steps} micro-batches per optimiser step (optim.grad_accum_steps)",
            hint="remove gradient_accumulation_steps from the accelerate config's deepspeed_config (deepsynth sets "
            "it), or give the same value to --grad-accum-steps",
        )
    from accelerate.utils import DeepSpeedPlugin

    plugin = DeepSpeedPlugin(gradient_accumulation_steps=steps)  # the rest from the launcher's environment
    return {"deepspeed_plugin": plugin, "gradient_accumulation_steps": steps}


def reuse_freed_host_memory() -> None:
    """Keep freed large blocks in glibc's heap instead of handing each back to the OS.

    A CPU step allocates and frees the same activations every step, and by default every block above 128 KiB is a
    fresh mmap paid in page faults: on the tiny preset 11,500 faults a step without this and 1,500 with it, and the
    step 1.18x faster (measured, benchmarks/RESULTS.md). Process-wide and harmless elsewhere; a no-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # musl and friends
    libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD: blocks up to 32 MiB (glibc's maximum) come from the heap
    libc.mallopt(-1, 2**30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap for the next step


def checkpoint_activations(model: Any) -> None:
    """Recompute each decoder layer's activations in backward (non-reentrant: works with frozen inputs)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.24; the old name warns there
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _max_steps(cfg: TrainConfig, locations: Sequence[DatasetLocation], processes: int) -> int:
    if cfg.optim.epochs is None:
        return cfg.optim.max_steps
    sizes = [split_rows(location, cfg.data.train_split) for location in locations]
    if any(size is None for size in sizes):
        raise ConfigError(
            "--epochs needs the size of every training split, and a Hub dataset's is not known here",
            hint="use --max-steps instead",
        )
    per_step = cfg.optim.batch_size * cfg.optim.grad_accum_steps * processes
    return max(1, math.ceil(cfg.optim.epochs * sum(size or 0 for size in sizes) / per_step))


def _eval_sets(
    cfg: TrainConfig, locations: Sequence[DatasetLocation], settings: Settings, emit: EventSink
) -> list[Row]:
    if not cfg.eval.enabled:
        return []
    rows: list[Row] = []
    for location in locations:
        try:
            rows.extend(eval_rows(location, cfg.data.eval_split, settings, cfg.eval.rows))
        except DatasetError as error:
            emit(Notice(f"{location.name}: no {cfg.data.eval_split} split to evaluate on ({error.message})"))
    if not rows:
        emit(Notice("no validation rows: evaluation is off for this run"))
    return rows


@contextlib.contextmanager
def _out_of_memory() -> Iterator[None]:
    try:
        yield
    except torch.OutOfMemoryError as error:
        raise TrainingError("out of memory on the accelerator during training", hint=OOM_HINT) from error
    except (MemoryError, RuntimeError, ValueError) as error:
        if not _host_out_of_memory(error):
            raise
        raise TrainingError("out of host memory (RAM) during training", hint=OOM_HINT) from error


def _host_out_of_memory(error: BaseException) -> bool:
    # numpy raises MemoryError ("Unable to allocate ..."), which the processor re-raises as a ValueError; torch's
    # CPU allocator raises a plain RuntimeError ("can't allocate memory").
    while error is not None:
        if isinstance(error, MemoryError) or "Unable to allocate" in str(error) or "allocate memory" in str(error):
            return True
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return False


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    # Dotted keys, scalar values (lists and None as text): what trackers take (TensorBoard's hparams refuse lists
    # and None) and what a resume compares.
    flat: dict[str, Any] = {}

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(f"{prefix}{key}.", item)
        else:
            flat[prefix[:-1]] = value if isinstance(value, bool | int | float | str) else str(value)

    visit("", config)
    return flat


# What decides the trajectory of a run: a resume with other values goes on, with a notice, but does not reproduce
# the uninterrupted run. Not here: how long (max_steps, epochs), evaluation, checkpointing, logging, outputs.
_TRAJECTORY = ("model.", "batching.", "optim.", "data.", "trainable.", "lora.", "precision")
_NOT_TRAJECTORY = {"optim.max_steps", "optim.epochs", "data.eval_split"}


def _check_resume(
    cfg: TrainConfig, checkpoint: Path, locations: Sequence[DatasetLocation], processes: int, emit: EventSink
) -> None:
    """Refuse a resume that cannot continue the checkpoint's run (other datasets, model, or LoRA on/off); give
    notice of the other settings that differ from the checkpoint's."""
    state = ckpt.read_state(checkpoint)
    streams = [f"{index}:{location.name}" for index, location in enumerate(locations)]
    saved_streams = list(state.get("data_position", {}))
    if saved_streams and saved_streams != streams:
        raise ConfigError(
            f"{checkpoint.name} was trained on {', '.join(saved_streams)}, not {', '.join(streams)}: its data position "
            "cannot continue on other datasets",
            hint="resume with the datasets the run started with (its train_config.json), or start a new --output-dir",
        )
    config_file = checkpoint / ckpt.CONFIG_FILE
    saved = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
    now = cfg.model_dump(mode="json")
    same_run = "resume with the model and --lora setting the run started with, or start a new --output-dir"
    trained = saved.get("model", {}).get("model")
    if trained not in (None, now["model"]["model"]):
        raise ConfigError(f"{checkpoint.name} holds {trained!r} weights, not {now['model']['model']!r}", hint=same_run)
    if saved and (saved.get("lora") is None) != (now["lora"] is None):
        how = ("with", "without") if saved.get("lora") is not None else ("without", "with")
        raise ConfigError(f"{checkpoint.name} was trained {how[0]} LoRA; this run asks {how[1]}", hint=same_run)
    before, after = _flat(saved), _flat(now)
    changed = [
        f"{key} {before.get(key)} -> {after.get(key)}"
        for key in sorted(set(before) | set(after))
        if key.startswith(_TRAJECTORY) and key not in _NOT_TRAJECTORY and before.get(key) != after.get(key)
    ]
    if state.get("processes", processes) != processes:
        changed.append(f"processes {state['processes']} -> {processes}")
    if saved and changed:
        emit(
            Notice(
                f"resuming {checkpoint.name} with settings that differ from its own: {'; '.join(changed)}. "
                "Training goes on, but not as the uninterrupted run would have"
            )
        )


def _defined(prefix: str, values: dict[str, float | None]) -> dict[str, float]:
    return {prefix + key: value for key, value in values.items() if value is not None}


def _label_tokens(batch: Batch) -> int:
    # The loss shifts labels by one; the first position is always a prompt token (-100), so this is that count.
    return int((batch.inputs["labels"][:, 1:] != IGNORE_INDEX).sum())


def count_target_lengths(batch: Batch, histogram: list[int]) -> None:
    """Add each row's count of target tokens (EOS included) to `histogram` (index: the count)."""
    for length in (batch.inputs["labels"][:, 1:] != IGNORE_INDEX).sum(dim=1).tolist():
        if length >= len(histogram):
            histogram.extend([0] * (length + 1 - len(histogram)))
        histogram[length] += 1


def generation_limit(histogram: Sequence[int], cap: int, quantile: float = 0.99) -> int:
    """`max_new_tokens` that lets `quantile` of the training summaries finish: their 99th-percentile token length
    (EOS included), within `cap` (batching.max_target_tokens; also the answer before any row was seen)."""
    total = sum(histogram)
    if total == 0:
        return cap
    seen = 0
    for length, rows in enumerate(histogram):
        seen += rows
        if seen >= quantile * total:
            return max(1, min(cap, length))
    return cap


def _add_histograms(a: Sequence[int], b: Sequence[int]) -> list[int]:
    size = max(len(a), len(b))
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(size)]


# ---------------------------------------------------------------------------------------------------------------
# One optimiser step (also what `benchmarks/train_step.py` times)


@dataclass
class StepResult:
    """What one optimiser step leaves. The tensors stay on the device: reading one is a host sync."""

    loss: torch.Tensor  # this process's share of the step's loss; the sum over processes is the loss
    grad_norm: torch.Tensor | None  # before clipping; None without clipping (DeepSpeed clips in its engine)
    target_tokens: int  # tokens with a loss: all micro-batches, all processes
    input_tokens: int  # attention-mask tokens: all micro-batches, all processes


def optimizer_step(
    model: Any,
    micro: Sequence[Batch],
    *,
    accelerator: Any,
    optimizer: Any,
    scheduler: Any,
    trainable: Sequence[torch.nn.Parameter],
    max_grad_norm: float | None,
    pixel_dtype: torch.dtype,
    router: RouterLoad | None = None,
    router_aux_loss_coef: float = 0.0,
    autocast: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> StepResult:
    """Forward and backward over this process's micro-batches, clip, AdamW, schedule, clear the gradients.

    `autocast`: the forward passes run under torch.autocast in that dtype (float32 weights stay the optimiser's);
    `scaler`: fp16 loss scaling (a step with inf gradients is dropped, the schedule waits).
    No host sync on one process (the token counts are Python ints); several processes sum their counts first.
    """
    processes = accelerator.num_processes
    counts = [sum(_label_tokens(b) for b in micro), sum(int(b.inputs["attention_mask"].sum()) for b in micro)]
    if processes > 1:
        summed = accelerator.reduce(torch.tensor(counts, device=accelerator.device), reduction="sum")
        counts = [int(value) for value in summed]
    step_tokens, input_tokens = counts
    # DeepSpeed's engine steps the optimiser inside `backward`, at the boundary `accumulate` marks (its plugin knows
    # the accumulation: `deepspeed_options`), and divides the loss by the accumulation steps: undone here.
    deepspeed = ckpt.is_deepspeed(accelerator)
    scale = processes * (len(micro) if deepspeed else 1)
    loss_sum = torch.zeros((), device=accelerator.device)
    for index, batch in enumerate(micro):
        inputs = batch.to(accelerator.device, dtype=pixel_dtype).inputs
        last = index == len(micro) - 1
        # Gradients are all-reduced once per optimiser step, on the last micro-batch.
        syncing = accelerator.accumulate(model) if deepspeed else accelerator.no_sync(model)
        with contextlib.nullcontext() if last and not deepspeed else syncing:
            if router is not None:
                router.begin()
            with _autocast(accelerator.device, autocast):
                out = model(**inputs, num_items_in_batch=max(1, step_tokens))
            loss = out.loss
            balance = router.balance_loss() if router is not None and router_aux_loss_coef else None
            if balance is not None:  # a mean per micro-batch: the step's term is their average
                loss = loss + router_aux_loss_coef * balance / len(micro)
            # DDP averages gradients over processes; the loss is already a share of the global sum.
            accelerator.backward(loss * scale if scaler is None else scaler.scale(loss * scale))
        loss_sum += out.loss.detach().float()
    grad_norm = None
    if scaler is not None:
        scaler.unscale_(optimizer)  # clip the true gradients
    if max_grad_norm is not None:
        grad_norm = accelerator.clip_grad_norm_(trainable, max_grad_norm)
    if scaler is None:
        optimizer.step()
        stepped = not accelerator.optimizer_step_was_skipped
    else:
        before = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        stepped = scaler.get_scale() >= before  # the scale drops exactly when the step was skipped
    if stepped:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss_sum, grad_norm, step_tokens, input_tokens)


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


def _chunks(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


@torch.no_grad()
def evaluate(
    model: Any,
    batcher: Batcher,
    rows: Sequence[Row],
    cfg: TrainConfig,
    device: torch.device,
    max_new_tokens: int | None = None,
) -> tuple[float | None, float | None]:
    """Validation loss (token-weighted) over `rows` and mean ROUGE-L F1 of greedy summaries of the first
    `eval.generate_rows` of them, at most `max_new_tokens` long (default: eval.max_new_tokens, else
    batching.max_target_tokens)."""
    from deepsynth_cli.evaluation.rouge import score

    model.eval()
    dtype = pixel_dtype(model)
    loss_sum, tokens = 0.0, 0
    for chunk in _chunks(rows, cfg.optim.batch_size):
        batch = batcher(chunk).to(device, dtype=dtype)
        count = _label_tokens(batch)
        if count:
            out = model(**batch.inputs, num_items_in_batch=count)
            loss_sum += float(out.loss) * count
            tokens += count
    rouge: float | None = None
    sample = rows[: cfg.eval.generate_rows]
    if sample:
        tokenizer = batcher.processor.tokenizer
        f1s: list[float] = []
        for chunk in _chunks(sample, cfg.optim.batch_size):
            batch = batcher.generation_inputs(chunk).to(device, dtype=dtype)
            # The decoding `eval` and `serve` default to (greedy with the n-gram repetition guard), so the score
            # that picks the best checkpoint is the one users will see.
            length = cfg.eval.max_new_tokens or max_new_tokens or cfg.batching.max_target_tokens
            decoding = GenerationOptions(max_new_tokens=length).generate_kwargs()
            generated = model.generate(**batch.inputs, **decoding)
            texts = tokenizer.batch_decode(generated[:, batch.inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            for row, text in zip(chunk, texts, strict=True):
                (scores,) = score([(text.strip(), str(row.get("summary") or ""))], str(row.get("language") or "en"))
                f1s.append(scores["rougeL"].f1)
        rouge = sum(f1s) / len(f1s)
    train_mode(model)
    return (loss_sum / tokens if tokens else None), rouge


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _is_fsdp(accelerator: Any) -> bool:
    from accelerate.utils import DistributedType

    return bool(accelerator.distributed_type == DistributedType.FSDP)


def _merged_lora(cfg: TrainConfig, peft_model: Any, fsdp_weights: dict[str, Any] | None) -> Any:
    """The LoRA model with its adapters merged into plain weights. Under FSDP this process holds only a shard of
    `peft_model`: the weights gathered by `accelerator.get_state_dict` go into a fresh copy, merged here."""
    if fsdp_weights is None:
        return peft_model.merge_and_unload()
    assert cfg.lora is not None
    fresh, _, _ = load_model(cfg.model, dtype=_training_dtype(cfg), seed=cfg.optim.seed)  # type: ignore[arg-type]
    fresh = add_lora(fresh, cfg.lora, experts=cfg.routed_experts == "lora")
    fresh.load_state_dict(fsdp_weights)
    return fresh.merge_and_unload()


# ---------------------------------------------------------------------------------------------------------------
# The run: setup -> train -> save -> cleanup, around one `_Run` that holds what they share


@dataclass
class _Run:
    cfg: TrainConfig
    say: EventSink
    accelerator: Any
    precision: RunPrecision
    scaler: torch.amp.GradScaler | None  # fp16 only
    model: Any  # as prepared by accelerate (DDP / FSDP / DeepSpeed wrapper, or the model itself)
    unwrapped: Any  # the model (a peft model with LoRA)
    processor: Processor
    info: PresetInfo
    optimizer: Any
    scheduler: Any
    batcher: Batcher
    stream: TrainStream
    locations: list[DatasetLocation]
    validation: list[Row]
    render: RenderConfig | None
    router: RouterLoad
    trainable: list[torch.nn.Parameter]
    counts: ParamCount
    max_steps: int
    resume: Path | None
    progress: _Progress
    started: float
    start_step: int = 0
    # This process, this run; what came before the checkpoint resumed from is in `progress` (all processes).
    truncation: Truncation = field(default_factory=Truncation)
    lengths: list[int] = field(default_factory=list)
    pending_losses: list[torch.Tensor] = field(default_factory=list)
    stopped_early: bool = False
    final: Path | None = None
    _truncation_before: dict[str, int] = field(default_factory=dict)
    _lengths_before: list[int] = field(default_factory=list)

    @property
    def main(self) -> bool:
        return bool(self.accelerator.is_main_process)

    @property
    def processes(self) -> int:
        return int(self.accelerator.num_processes)

    @property
    def sharded(self) -> bool:
        # FSDP / DeepSpeed: optimiser state (FSDP: weights too) split over the processes; saving is collective.
        return ckpt.is_sharded(self.accelerator)

    def reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over processes: a collective, so every process calls it at the same point."""
        return self.accelerator.reduce(tensor, reduction="sum") if self.processes > 1 else tensor

    def settle_losses(self) -> None:
        # Step losses stay on the device until something reads them (a log line, a checkpoint, the end): reading
        # one is a host sync, and on a GPU a sync every step keeps the CPU from queueing the next step.
        if self.pending_losses:
            stacked = self.reduce(torch.stack(self.pending_losses))
            self.progress.losses.extend(float(value) for value in stacked.tolist())
            self.pending_losses.clear()

    def totals(self) -> None:
        """Truncation counts and target lengths of all processes into `progress` (a collective)."""
        local = torch.tensor(list(self.truncation.to_dict().values()), device=self.accelerator.device)
        total = Truncation(**dict(zip(self.truncation.to_dict(), (int(v) for v in self.reduce(local)), strict=True)))
        total += Truncation(**self._truncation_before)
        self.progress.truncation = total.to_dict()
        lengths = self.reduce(torch.tensor(self.lengths, device=self.accelerator.device))
        self.progress.target_lengths = _add_histograms(self._lengths_before, [int(v) for v in lengths.tolist()])
        self.truncation, self.lengths = Truncation(), [0] * len(self.lengths)
        self._truncation_before, self._lengths_before = self.progress.truncation, self.progress.target_lengths

    def limits(self, histogram: Sequence[int]) -> ModelLimits:
        length = generation_limit(histogram, self.cfg.batching.max_target_tokens)
        return ModelLimits(max_pages=self.cfg.batching.max_pages, max_new_tokens=length)

    def __post_init__(self) -> None:
        self._truncation_before = dict(self.progress.truncation)
        self._lengths_before = list(self.progress.target_lengths)
        self.lengths = [0] * (self.cfg.batching.max_target_tokens + 1)  # no target is longer


def train(cfg: TrainConfig, emit: EventSink, settings: Settings) -> TrainReport:
    """Train as `cfg` says; return what happened. Raises domain errors for what the user can fix."""
    run = setup(cfg, emit, settings)
    with _out_of_memory():
        train_steps(run)
    save_final(run)
    return cleanup(run)


def setup(cfg: TrainConfig, emit: EventSink, settings: Settings) -> _Run:
    """Accelerator, datasets, model, optimiser, schedule and data position (from the checkpoint when resuming)."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Writing model shards" bars on stderr: the CLI owns the console
    started = time.perf_counter()
    # MoE: an expert that no token was routed to in a step has no gradient; DDP must not wait for it.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=True)
    trackers = {"log_with": cfg.report_to, "project_dir": cfg.output_dir / "logs"} if cfg.report_to else {}
    # Autocast and loss scaling are ours (`optimizer_step`), not accelerate's: its mixed precision is fixed for the
    # life of the process, and one process may run several trainings (tests, notebooks) with different settings.
    accelerator = Accelerator(
        mixed_precision="no", kwargs_handlers=[ddp], **trackers, **deepspeed_options(cfg, os.environ)
    )
    # After the Accelerator: it is what reads the launcher's environment (ACCELERATE_USE_CPU, the process group);
    # a PartialState made before it would settle this process as a lone one.
    precision = resolve_precision(cfg.precision, accelerator.device)
    if accelerator.device.type == "cpu":
        reuse_freed_host_memory()
    say: EventSink = emit if accelerator.is_main_process else (lambda event: None)
    processes = accelerator.num_processes
    set_seed(cfg.optim.seed)

    resume = _resume_point(cfg, say)
    locations = [resolve_dataset(name, settings) for name in cfg.data.datasets]
    if resume is not None:
        _check_resume(cfg, resume, locations, processes, say)
    render = _training_render(locations, settings, say)
    max_steps = _max_steps(cfg, locations, processes)
    model, processor, info = _load(cfg, resume)
    counts = count_parameters(model.parameters())
    optimizer = adamw(model.named_parameters(), cfg.optim.lr, cfg.optim.weight_decay)
    scheduler = warmup_cosine(
        optimizer, warmup_steps=cfg.optim.warmup_steps, max_steps=max_steps, min_lr_ratio=cfg.optim.min_lr_ratio
    )
    # The scheduler is stepped here, not prepared: accelerate's wrapper steps it once per process.
    prepared, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(prepared)
    train_mode(prepared)
    scaler = torch.amp.GradScaler(accelerator.device.type) if precision.mixed == "fp16" else None

    progress, position = _Progress(), DataPosition()
    if resume is not None:
        state = ckpt.read_state(resume)
        progress = _Progress.from_state(state)
        position = DataPosition.from_dict(state["data_position"])
        if ckpt.is_sharded(accelerator):  # every process loads its shard
            ckpt.load_sharded_optimizer(accelerator, prepared, optimizer, resume)
        sharded_optimizer = None if ckpt.is_sharded(accelerator) else optimizer
        ckpt.load_training_state(resume, sharded_optimizer, scheduler, scaler)  # RNG last
    stream = TrainStream(
        locations,
        settings,
        split=cfg.data.train_split,
        weights=cfg.data.weights,
        streaming=cfg.data.streaming,
        seed=cfg.optim.seed,
        shuffle_buffer=cfg.data.shuffle_buffer,
        position=position,
    )
    run = _Run(
        cfg=cfg,
        say=say,
        accelerator=accelerator,
        precision=precision,
        scaler=scaler,
        model=prepared,
        unwrapped=unwrapped,
        processor=processor,
        info=info,
        optimizer=optimizer,
        scheduler=scheduler,
        batcher=Batcher.from_limits(processor, info, cfg.batching),
        stream=stream,
        locations=locations,
        validation=_eval_sets(cfg, locations, settings, say),
        render=render,
        # Tokens per expert of the MoE routers, read on logged steps; their probabilities for the balance loss.
        router=RouterLoad(unwrapped, keep_probabilities=cfg.optim.router_aux_loss_coef > 0),
        trainable=[param for param in prepared.parameters() if param.requires_grad],
        counts=counts,
        max_steps=max_steps,
        resume=resume,
        progress=progress,
        started=started,
        start_step=progress.step,
    )
    say(
        Started(
            model=cfg.model.model,
            datasets=[location.name for location in locations],
            trainable_params=counts.trainable,
            total_params=counts.total,
            max_steps=max_steps,
            start_step=progress.step,
            resumed_from=resume,
            device=str(accelerator.device),
            processes=processes,
            precision=cfg.precision,
            weights_dtype=precision.weights,
            autocast=precision.autocast,
        )
    )
    if cfg.precision == "bf16-pure":
        say(Notice(PURE_BF16_NOTICE))
    if cfg.report_to:
        accelerator.init_trackers("deepsynth-train", config=_flat(cfg.model_dump(mode="json")))
    return run


def train_steps(run: _Run) -> None:
    """Optimiser steps up to max_steps: log, evaluate, checkpoint, maybe stop early."""
    cfg, progress, accelerator = run.cfg, run.progress, run.accelerator
    pixels = pixel_dtype(run.unwrapped)
    autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(run.precision.autocast or "")
    rows_per_step = cfg.optim.batch_size * cfg.optim.grad_accum_steps * run.processes
    rank = accelerator.process_index
    window_seconds, window_rows, window_tokens = 0.0, 0, 0  # since the last log line: its samples/s and tokens/s
    step = progress.step
    while step < run.max_steps:
        step_started = time.perf_counter()
        micro: list[Batch] = []
        for _ in range(cfg.optim.grad_accum_steps):
            rows = run.stream.next_rows(cfg.optim.batch_size * run.processes)
            batch = run.batcher(rows[rank :: run.processes])
            run.truncation += batch.truncation
            count_target_lengths(batch, run.lengths)
            micro.append(batch)
        lr = float(run.scheduler.get_last_lr()[0])
        result = optimizer_step(
            run.model,
            micro,
            accelerator=accelerator,
            optimizer=run.optimizer,
            scheduler=run.scheduler,
            trainable=run.trainable,
            max_grad_norm=cfg.optim.max_grad_norm,
            pixel_dtype=pixels,
            router=run.router,
            router_aux_loss_coef=cfg.optim.router_aux_loss_coef,
            autocast=autocast,
            scaler=run.scaler,
        )
        step += 1
        run.pending_losses.append(result.loss)
        logged = step % cfg.log_every == 0 or step == run.max_steps
        if logged:
            run.settle_losses()  # the step's one host sync, so the time below is work done, not work queued
        seconds = time.perf_counter() - step_started
        progress.step = step
        progress.samples += rows_per_step
        progress.tokens += result.input_tokens
        progress.seconds += seconds
        window_seconds += seconds
        window_rows += rows_per_step
        window_tokens += result.input_tokens
        if logged:
            grad_norm = float(result.grad_norm) if result.grad_norm is not None else None
            memory = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
            rates = (window_rows / window_seconds, window_tokens / window_seconds)
            load = run.router.summary(run.reduce) or {}
            run.say(StepDone(step, run.max_steps, progress.losses[-1], lr, grad_norm, *rates, memory, **load))
            if cfg.report_to:
                scalars = {"loss": progress.losses[-1], "lr": lr, "samples_per_s": rates[0], "grad_norm": grad_norm}
                accelerator.log(_defined("train/", {**scalars, **load}), step=step)
            window_seconds, window_rows, window_tokens = 0.0, 0, 0

        improved = False
        if run.validation and (step == run.max_steps or (cfg.eval.every and step % cfg.eval.every == 0)):
            improved = _evaluate_now(run, step, autocast)
        if step % cfg.checkpoint.every == 0 or improved:
            save_checkpoint(run, step)
        if cfg.eval.patience is not None and progress.evals_without_improvement >= cfg.eval.patience:
            run.say(Notice(f"early stop at step {step}: {cfg.eval.patience} evaluations without improvement"))
            run.stopped_early = True
            break
    run.settle_losses()


def _evaluate_now(run: _Run, step: int, autocast: torch.dtype | None) -> bool:
    """Evaluate at `step`, record it, and say whether it is the best so far."""
    cfg, progress = run.cfg, run.progress
    # All processes' rows so far (a collective: every process evaluates at the same step), so that every process
    # generates to the same limit: the one the saved model will carry.
    lengths = run.reduce(torch.tensor(run.lengths, device=run.accelerator.device)).tolist()
    seen = run.limits(_add_histograms(run._lengths_before, lengths)).max_new_tokens
    with run.router.paused(), _autocast(run.accelerator.device, autocast):
        val_loss, rouge = evaluate(run.unwrapped, run.batcher, run.validation, cfg, run.accelerator.device, seen)
        ablation = pixel_ablation(run, cfg.eval.max_new_tokens or seen) if cfg.eval.ablation else []
    value = val_loss if cfg.eval.metric == "loss" else rouge
    improved = False
    if value is not None:
        best = progress.best_value
        if best is None or (value < best if cfg.eval.metric == "loss" else value > best):
            improved, progress.best_step, progress.best_value = True, step, value
            progress.evals_without_improvement = 0
        else:
            progress.evals_without_improvement += 1
    progress.evaluations.append({"step": step, "loss": val_loss, "rougeL": rouge, "ablation": ablation})
    run.say(Evaluated(step, val_loss, rouge, improved, ablation))
    if cfg.report_to:
        scalars: dict[str, float | None] = {"loss": val_loss, "rougeL": rouge}
        for found in ablation:
            where = f"{found['language']}/" if len(ablation) > 1 else ""
            for condition, metrics in found["conditions"].items():
                for metric, interval in metrics.items():
                    scalars[f"pages/{where}{metric}_{condition}"] = interval["mean"]
        run.accelerator.log(_defined("eval/", scalars), step=step)
    return improved


def pixel_ablation(run: _Run, max_new_tokens: int) -> list[dict[str, Any]]:
    """`evaluation/ablation.ablate` on the validation sample, per language: the loss (and ROUGE-L of the first
    eval.generate_rows) on own pages, another row's pages and blank pages; `reads` says whether own pages win.
    A language with fewer than 2 rows has no other row to swap with and is left out."""
    from deepsynth_cli.evaluation.ablation import ablate
    from deepsynth_cli.inference.summarizer import Summarizer

    cfg, model = run.cfg, run.unwrapped
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # LoRA: adapters stay active
    summarizer = Summarizer(
        base,
        run.processor,
        run.info,
        run.render or RenderConfig(),
        "training",
        run.accelerator.device,
        max_pages=cfg.batching.max_pages,
        max_new_tokens=max_new_tokens,
    )
    groups: dict[str, list[Row]] = {}
    for row in run.validation:
        groups.setdefault(str(row.get("language") or "en"), []).append(row)
    found: list[dict[str, Any]] = []
    model.eval()
    try:
        for language, rows in groups.items():
            if len(rows) < 2:
                continue
            result = ablate(
                summarizer,
                rows,
                language=language,
                batch_size=cfg.optim.batch_size,
                generate_rows=cfg.eval.generate_rows,
            )
            found.append({"language": language, **result})
    finally:
        train_mode(model)
    return found


def save_weights(run: _Run, folder: Path, weights: dict[str, Any] | None, *, final: bool) -> None:
    """The one writer of a model folder: weights, processor, preset fields, render settings and limits.

    `weights`: the full state dict gathered by `accelerator.get_state_dict` under FSDP / DeepSpeed (the module's
    own tensors are only this process's shard), None otherwise. A checkpoint with LoRA holds the adapter and the
    base weights trained in full (the base is the preset's); the final model of a LoRA run is merged, so it loads
    without peft.
    """
    cfg, unwrapped = run.cfg, run.unwrapped
    folder.mkdir(parents=True, exist_ok=True)
    # The final model in the preset's dtype (how it is loaded for inference: bf16 for the real preset, half the
    # size of the float32 masters); checkpoints keep the masters, so a resume continues exactly.
    dtype = cfg.model.dtype if final else None
    if cfg.lora is not None and final:
        merged = _merged_lora(cfg, unwrapped, weights if _is_fsdp(run.accelerator) else None)
        save_pretrained_as(merged, folder, None, dtype)
    elif cfg.lora is not None:
        unwrapped.save_pretrained(folder, state_dict=weights)  # peft keeps the adapter's entries
        in_full = set(trained_base(unwrapped))
        base = {k: v.contiguous() for k, v in (weights or trained_base(unwrapped)).items() if k in in_full}
        save_file(base, str(folder / TRAINED_BASE_FILE))
    else:
        save_pretrained_as(unwrapped, folder, weights, dtype)
    run.processor.save_pretrained(folder)
    run.info.save(folder)
    if run.render is not None:  # `serve` and `eval` render text exactly as the training pages were
        save_render_config(folder, run.render)
    save_model_limits(folder, run.limits(run.progress.target_lengths))  # `eval` and `serve` default to these


def save_pretrained_as(model: Any, folder: Path, weights: dict[str, Any] | None, dtype: str | None) -> None:
    """`model.save_pretrained(folder)` with its floating-point tensors written in `dtype` ("bfloat16", ...; None:
    as they are) where that is narrower than theirs, and config.json saying so.

    The cast is of copies, made on the CPU: the model's own weights (the float32 masters of a run that may go on)
    are untouched. Tensors that share storage (tied weights) share their copy, so transformers still sees the tie.
    What the model class keeps in float32 whatever it is loaded in (`_keep_in_fp32_modules_strict`: the MoE
    routers' `gate.weight`) is written in float32, so reloading gives back exactly what was saved.
    `weights`: a gathered full state dict (FSDP / DeepSpeed) instead of the module's own.
    """
    state = weights if weights is not None else model.state_dict()
    target = getattr(torch, dtype) if dtype is not None else None
    kept = sorted(getattr(model, "_keep_in_fp32_modules_strict", None) or ())
    in_float32 = re.compile("|".join(rf"(^|\.){re.escape(module)}($|\.)" for module in kept)) if kept else None

    def narrowed(name: str, tensor: torch.Tensor) -> bool:
        # Only ever narrower: widening (bf16-pure weights into a float32 preset) adds bytes, not precision.
        return (
            target is not None
            and tensor.is_floating_point()
            and tensor.element_size() > target.itemsize
            and not (in_float32 is not None and in_float32.search(name))
        )

    if not any(narrowed(name, tensor) for name, tensor in state.items()):
        model.save_pretrained(folder, state_dict=weights)
        return
    copies: dict[tuple[int, int, tuple[int, ...]], torch.Tensor] = {}

    def cast(name: str, tensor: torch.Tensor) -> torch.Tensor:
        if not narrowed(name, tensor):
            return tensor
        key = (tensor.untyped_storage().data_ptr(), int(tensor.storage_offset()), tuple(tensor.shape))
        if key not in copies:
            copies[key] = tensor.detach().to(device="cpu", dtype=target)
        return copies[key]

    model.save_pretrained(folder, state_dict={name: cast(name, tensor) for name, tensor in state.items()})
    # save_pretrained records the dtype of the module's parameters (the float32 masters): say what was written.
    recorded = model.config.dtype
    model.config.dtype = dtype
    try:
        model.config.save_pretrained(folder)
    finally:
        model.config.dtype = recorded


def save_checkpoint(run: _Run, step: int) -> Path:
    """`step-NNNNNN/` with everything the next step depends on; reached by every process."""
    root, progress = run.cfg.output_dir, run.progress
    run.settle_losses()
    run.totals()
    state = {**progress.to_dict(), "data_position": run.stream.position.to_dict(), "processes": run.processes}
    common = {"optimizer": run.optimizer, "scheduler": run.scheduler, "scaler": run.scaler, "state": state}
    config = run.cfg.model_dump(mode="json")
    path = root / ckpt.checkpoint_name(step)
    if run.sharded:  # every process takes part: gathering the weights and saving the optimiser are collectives
        ckpt.save_sharded_checkpoint(
            root,
            step,
            accelerator=run.accelerator,
            model=run.model,
            save_weights=lambda folder, weights: save_weights(run, folder, weights, final=False),
            config=config,
            **common,
        )
    elif run.main:
        ckpt.save_checkpoint(
            root,
            step,
            save_weights=lambda folder: save_weights(run, folder, None, final=False),
            config=config,
            **common,
        )
    if run.main:
        best = {root / ckpt.checkpoint_name(progress.best_step)} if progress.best_step is not None else set()
        ckpt.prune(root, run.cfg.checkpoint.keep, protect=best)
        run.say(CheckpointSaved(step, path))
    run.accelerator.wait_for_everyone()
    return path


def save_final(run: _Run) -> None:
    """The final model in output_dir (merged with LoRA) beside the run's resolved config."""
    # FSDP / DeepSpeed: every process takes part in gathering the full weights; they exist on process 0 only.
    weights = run.accelerator.get_state_dict(run.model) if run.sharded else None
    run.totals()  # a collective too
    if run.main:
        run.final = run.cfg.output_dir
        save_weights(run, run.final, weights, final=True)
        ckpt.write_run_config(run.final, run.cfg.model_dump(mode="json"))
    run.accelerator.wait_for_everyone()


def cleanup(run: _Run) -> TrainReport:
    """Trackers closed, the process group torn down in the order that does not hang, and the report."""
    accelerator, progress = run.accelerator, run.progress
    run.router.remove()
    if run.processes > 1 and torch.distributed.is_initialized():
        # All processes reach this together, in this order, before `end_training` (which destroys the process
        # group, and would leave the DDP Reducer holding its last reference). Otherwise the Reducer is freed when
        # this function returns, milliseconds after the last all-reduce: its ~ProcessGroupGloo joins the gloo
        # worker threads while holding the GIL, and a worker still releasing that all-reduce's tensor waits for
        # the GIL: a hang at exit in about 1 run in 4. So: free the DDP model (and its Reducer) while the group is
        # still registered, wait at a barrier (the GIL is free there, the workers finish), then destroy the group.
        accelerator.free_memory()  # the accelerator holds the prepared model and optimiser too
        run.model = run.unwrapped = run.optimizer = None
        gc.collect()
        accelerator.wait_for_everyone()
        torch.distributed.destroy_process_group()
    accelerator.end_training()
    best = run.cfg.output_dir / ckpt.checkpoint_name(progress.best_step) if progress.best_step is not None else None
    seconds = progress.seconds
    return TrainReport(
        output_dir=run.cfg.output_dir,
        final_model=run.final,
        model=run.cfg.model.model,
        datasets=[location.name for location in run.locations],
        steps=progress.step,
        start_step=run.start_step,
        samples=progress.samples,
        tokens=progress.tokens,
        trainable_params=run.counts.trainable,
        total_params=run.counts.total,
        losses=progress.losses,
        evaluations=progress.evaluations,
        best_checkpoint=best,
        checkpoints=ckpt.list_checkpoints(run.cfg.output_dir),
        truncation=progress.truncation,
        stopped_early=run.stopped_early,
        seconds=time.perf_counter() - run.started,
        samples_per_s=progress.samples / seconds if seconds else 0.0,
        tokens_per_s=progress.tokens / seconds if seconds else 0.0,
        process_index=accelerator.process_index,
        processes=run.processes,
    )


__all__ = ["OOM_HINT", "Model", "evaluate", "train"]
