"""Trainable parameters and optimiser memory of `deepsynth train` per setting, for DeepSeek-OCR-2 at its real size.

Nothing is downloaded or allocated: the real architecture (benchmarks/train_step.py's `real_size_config`) is built
on torch's meta device, each setting goes through the same `TrainConfig` -> `add_lora` -> `apply_freezing` path as
a run, and the figures are counts times bytes:

    weights   all parameters x 4 bytes (float32 masters; bf16-pure: 2)
    grads     trainable x 4 (bf16-pure: 2)
    AdamW     trainable x 8 (exp_avg + exp_avg_sq in the weights' dtype; bf16-pure: 4)

Activations are not included (they depend on batch, pages and activation checkpointing).

    python benchmarks/trainable_params.py            # a table, then one JSON line
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

SETTINGS: dict[str, dict[str, Any]] = {
    "full decoder (preset default)": {},
    "full decoder, bf16-pure": {"precision": "bf16-pure"},
    "experts frozen": {"trainable.routed_experts": "freeze"},
    "LoRA r16 (experts frozen)": {"lora": {}},
    "LoRA r16 + projector": {"lora": {}, "trainable.projector": True},
    "LoRA r16 + LoRA on experts": {"lora": {}, "trainable.routed_experts": "lora"},
    "everything (vision tower too)": {"trainable.vision_tower": True, "trainable.projector": True},
}
GIB = 2**30


def measure() -> list[dict[str, Any]]:
    import torch
    from train_step import real_size_config
    from transformers import DeepseekOcr2ForConditionalGeneration
    from transformers.utils import logging as hf_logging

    from deepsynth_cli.training.config import load_train_config
    from deepsynth_cli.training.trainable import add_lora, apply_freezing, count_parameters

    hf_logging.set_verbosity_error()
    config = real_size_config(image_token_id=128815, vocab_size=129280)
    rows = []
    for name, overrides in SETTINGS.items():
        cfg = load_train_config(None, {"data.datasets": ["x"], **overrides})
        with torch.device("meta"):
            model: Any = DeepseekOcr2ForConditionalGeneration(config)
            if cfg.lora is not None:
                model = add_lora(model, cfg.lora, experts=cfg.routed_experts == "lora")
        apply_freezing(model, cfg)
        counts = count_parameters(model.parameters())
        width = 2 if cfg.precision == "bf16-pure" else 4
        rows.append(
            {
                "setting": name,
                "trainable_m": round(counts.trainable / 1e6, 1),
                "total_m": round(counts.total / 1e6, 1),
                "weights_gib": round(counts.total * width / GIB, 2),
                "grads_gib": round(counts.trainable * width / GIB, 2),
                "adamw_gib": round(counts.trainable * 2 * width / GIB, 2),
                "sum_gib": round((counts.total + 3 * counts.trainable) * width / GIB, 2),
            }
        )
    return rows


def main() -> None:
    rows = measure()
    header = f"{'setting':32} {'trainable M':>12} {'total M':>9} {'weights':>8} {'grads':>7} {'AdamW':>7}"
    header += f" {'sum GiB':>8}"
    print(header)
    for row in rows:
        print(
            f"{row['setting']:32} {row['trainable_m']:12,.1f} {row['total_m']:9,.1f} {row['weights_gib']:8.2f} "
            f"{row['grads_gib']:7.2f} {row['adamw_gib']:7.2f} {row['sum_gib']:8.2f}"
        )
    print(json.dumps({"benchmark": "trainable_params", "model": "deepseek-ocr-2 (real size, meta)", "rows": rows}))


if __name__ == "__main__":
    main()
