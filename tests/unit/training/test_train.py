"""`services.train.run` on real shards with the tiny preset: files, reload, learning, resume, freezing, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.data.rendered import read_manifest
from deepsynth_cli.data.store import resolve_dataset
from deepsynth_cli.errors import DatasetError, OutputError
from deepsynth_cli.inference.summarizer import read_render_config
from deepsynth_cli.models.batching import Batcher
from deepsynth_cli.models.presets import load_model
from deepsynth_cli.services import train
from deepsynth_cli.settings import Settings
from deepsynth_cli.training.config import TrainConfig, load_train_config
from deepsynth_cli.training.data import eval_rows
from deepsynth_cli.training.events import CheckpointSaved, Evaluated, Event, Started, StepDone
from deepsynth_cli.training.loop import evaluate

CHECKPOINT_FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "deepsynth_preset.json",
    "deepsynth_render.json",
    "deepsynth_limits.json",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state.pt",
    "train_config.json",
    "trainer_state.json",
}


def _weights(folder: Path | None) -> dict[str, torch.Tensor]:
    assert folder is not None
    return dict(load_model(str(folder))[0].state_dict())


def tiny_cfg(data: Path | list[Path], out: Path, **overrides: Any) -> TrainConfig:
    datasets = [str(path) for path in (data if isinstance(data, list) else [data])]
    values: dict[str, Any] = {
        "model.model": "tiny",
        "data.datasets": datasets,
        "output_dir": out,
        "optim.max_steps": 4,
        "checkpoint.every": 2,
        "eval.enabled": False,
        "batching.max_target_tokens": 24,
        **overrides,
    }
    return load_train_config(None, values)


class Recorder:
    def __init__(self, stop_at: int | None = None) -> None:
        self.events: list[Event] = []
        self.stop_at = stop_at

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, StepDone) and event.step == self.stop_at:
            raise KeyboardInterrupt  # as a kill would, between two steps: after the checkpoint before it

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


def test_a_short_run_writes_checkpoints_and_a_model_that_reloads_and_generates(
    aclsum_data: Path, tmp_path: Path
) -> None:
    events = Recorder()
    report = train.run(tiny_cfg(aclsum_data, tmp_path / "run", **{"checkpoint.keep": 1}), events)

    assert report.steps == 4 and len(report.losses) == 4 and all(loss > 0 for loss in report.losses)
    assert [path.name for path in report.checkpoints] == ["step-000004"]  # step-000002 pruned (keep 1)
    assert {path.name for path in (tmp_path / "run" / "step-000004").iterdir()} == CHECKPOINT_FILES
    (started,) = events.of(Started)
    assert 0 < started.trainable_params < started.total_params == report.total_params
    assert [event.step for event in events.of(StepDone)] == [1, 2, 3, 4]
    assert all(event.samples_per_s > 0 and event.tokens_per_s > 0 for event in events.of(StepDone))
    assert [event.step for event in events.of(CheckpointSaved)] == [2, 4]
    assert report.truncation["rows"] == 8 and report.truncation["targets_truncated"] > 0  # 24-token limit

    # The pages' render settings travel with the model: `serve` and `eval` render text the same way.
    manifest = read_manifest(resolve_dataset(str(aclsum_data), Settings()), Settings())
    assert manifest is not None
    assert read_render_config(report.final_model) == RenderConfig.model_validate(manifest["render"])

    import transformers

    model = transformers.AutoModelForImageTextToText.from_pretrained(report.final_model)
    processor = transformers.AutoProcessor.from_pretrained(report.final_model)
    reloaded, _, info = load_model(str(report.final_model))
    assert torch.equal(model.lm_head.weight, reloaded.lm_head.weight)
    rows = eval_rows(resolve_dataset(str(aclsum_data), Settings()), "validation", Settings(), 2)
    batch = Batcher(processor, info).generation_inputs(rows)
    prompt = batch.inputs["input_ids"].shape[1]
    out = model.generate(**batch.inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[0] == 2 and prompt < out.shape[1] <= prompt + 5
    assert len(processor.tokenizer.batch_decode(out[:, prompt:], skip_special_tokens=True)) == 2


def test_the_vision_tower_stays_frozen_and_the_decoder_moves(aclsum_data: Path, tmp_path: Path) -> None:
    report = train.run(tiny_cfg(aclsum_data, tmp_path / "run", **{"optim.max_steps": 2}))
    before = load_model("tiny")[0].state_dict()
    after = _weights(report.final_model)  # saved in the original checkpoint's names: compare as loaded
    vision = [name for name in after if name.startswith("model.vision_tower.")]
    assert vision and all(torch.equal(after[name], before[name]) for name in vision)
    assert not torch.equal(after["lm_head.weight"], before["lm_head.weight"])

    frozen_experts = train.run(
        tiny_cfg(aclsum_data, tmp_path / "experts", **{"optim.max_steps": 1, "trainable.routed_experts": False})
    )
    assert frozen_experts.trainable_params < report.trainable_params
    after = _weights(frozen_experts.final_model)
    experts = [name for name in after if ".mlp.experts." in name]
    assert experts and all(torch.equal(after[name], before[name]) for name in experts)


def test_the_loss_goes_down_on_a_small_fixed_set(aclsum_data: Path, tmp_path: Path) -> None:
    # Six papers, shown again every 3 steps: a random tiny model memorises their (cut) summaries quickly.
    overrides = {"optim.max_steps": 15, "optim.lr": 1e-2, "optim.min_lr_ratio": 1.0, "checkpoint.every": 100}
    report = train.run(tiny_cfg(aclsum_data, tmp_path / "run", **overrides))
    assert sum(report.losses[-3:]) / 3 < 0.7 * report.losses[0], report.losses  # typically 7.6 -> 4


def test_resume_after_an_interruption_matches_an_uninterrupted_run(aclsum_data: Path, tmp_path: Path) -> None:
    overrides = {"optim.max_steps": 6, "optim.warmup_steps": 2, "optim.grad_accum_steps": 2, "checkpoint.every": 3}
    whole = train.run(tiny_cfg(aclsum_data, tmp_path / "whole", **overrides))

    with pytest.raises(KeyboardInterrupt):
        train.run(tiny_cfg(aclsum_data, tmp_path / "cut", **overrides), Recorder(stop_at=5))
    with pytest.raises(OutputError, match="already holds checkpoints"):
        train.run(tiny_cfg(aclsum_data, tmp_path / "cut", **overrides))
    events = Recorder()
    resumed = train.run(tiny_cfg(aclsum_data, tmp_path / "cut", resume=True, **overrides), events)

    assert events.of(Started)[0].start_step == 3 and resumed.start_step == 3
    assert [event.step for event in events.of(StepDone)] == [4, 5, 6]
    assert resumed.losses == pytest.approx(whole.losses, rel=1e-6, abs=1e-7)
    assert resumed.samples == whole.samples and resumed.truncation == whole.truncation
    final_whole, final_resumed = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert all(torch.allclose(final_whole[name], final_resumed[name], atol=1e-6) for name in final_whole)


def _safetensors_dtypes(path: Path) -> dict[str, str]:
    """The dtype of each tensor in a safetensors file (a folder: its model.safetensors), as "BF16", "F32"..."""
    from safetensors import safe_open

    path = path / "model.safetensors" if path.is_dir() else path
    with safe_open(str(path), framework="pt") as handle:
        return {name: handle.get_slice(name).get_dtype() for name in handle.keys()}  # noqa: SIM118


def test_the_final_model_is_saved_in_the_presets_dtype_and_checkpoints_keep_float32(
    aclsum_data: Path, tmp_path: Path
) -> None:
    # Declared bf16 (as the real preset is): training keeps float32 masters, the final model is written in bf16.
    overrides = {"model.dtype": "bfloat16", "optim.max_steps": 4, "checkpoint.every": 2}
    whole = train.run(tiny_cfg(aclsum_data, tmp_path / "whole", **overrides))
    final, last = tmp_path / "whole", tmp_path / "whole" / "step-000004"
    saved = _safetensors_dtypes(final)
    routers = {name for name in saved if name.endswith(".mlp.gate.weight")}  # float32 in any model of this class
    assert routers and {saved[name] for name in routers} == {"F32"}
    assert {dtype for name, dtype in saved.items() if name not in routers} == {"BF16"}
    assert set(_safetensors_dtypes(last).values()) == {"F32"}
    assert json.loads((final / "config.json").read_text(encoding="utf-8"))["dtype"] == "bfloat16"
    assert json.loads((last / "config.json").read_text(encoding="utf-8"))["dtype"] == "float32"
    assert (final / "model.safetensors").stat().st_size < 0.6 * (last / "model.safetensors").stat().st_size

    # It reloads in bf16 by itself, holds the masters rounded to bf16, and generates.
    model, processor, info = load_model(str(final))
    masters = load_model(str(last))[0].state_dict()
    assert model.dtype == torch.bfloat16
    assert all(torch.equal(tensor, masters[name].to(tensor.dtype)) for name, tensor in model.state_dict().items())
    rows = eval_rows(resolve_dataset(str(aclsum_data), Settings()), "validation", Settings(), 2)
    batch = Batcher(processor, info).generation_inputs(rows).to("cpu", dtype=torch.bfloat16)
    prompt = batch.inputs["input_ids"].shape[1]
    assert model.generate(**batch.inputs, max_new_tokens=3, do_sample=False).shape[1] > prompt

    # A resume starts from the float32 checkpoint and continues exactly.
    with pytest.raises(KeyboardInterrupt):
        train.run(tiny_cfg(aclsum_data, tmp_path / "cut", **overrides), Recorder(stop_at=3))
    resumed = train.run(tiny_cfg(aclsum_data, tmp_path / "cut", resume=True, **overrides))
    assert resumed.start_step == 2 and resumed.losses == pytest.approx(whole.losses, rel=1e-6, abs=1e-7)
    again = load_model(str(tmp_path / "cut" / "step-000004"))[0].state_dict()
    assert all(torch.allclose(again[name], tensor, atol=1e-6) for name, tensor in masters.items())


def test_evaluation_keeps_the_best_checkpoint_and_can_stop_early(aclsum_data: Path, tmp_path: Path) -> None:
    events = Recorder()
    overrides = {
        "optim.max_steps": 8,
        "optim.lr": 0.05,  # too high on purpose: validation gets worse, patience runs out
        "checkpoint.every": 100,
        "checkpoint.keep": 1,
        "eval.enabled": True,
        "eval.every": 2,
        "eval.rows": 2,
        "eval.generate_rows": 1,
        "eval.max_new_tokens": 4,
        "eval.patience": 1,
        "eval.ablation": False,
    }
    report = train.run(tiny_cfg(aclsum_data, tmp_path / "run", **overrides), events)
    evaluations = events.of(Evaluated)
    assert evaluations and evaluations[0].improved and evaluations[0].loss is not None
    assert all(event.ablation == [] for event in evaluations)  # asked off
    assert all(0.0 <= (event.rouge_l or 0.0) <= 1.0 for event in evaluations)
    best = min(report.evaluations, key=lambda item: item["loss"])
    assert report.best_checkpoint == tmp_path / "run" / f"step-{best['step']:06d}"
    assert report.best_checkpoint.is_dir()  # kept, saved when it improved
    if report.stopped_early:
        assert report.steps < 8


def test_evaluation_is_on_by_default_and_runs_after_the_last_step(aclsum_data: Path, tmp_path: Path) -> None:
    events = Recorder()
    defaults = {"optim.max_steps": 3, "checkpoint.every": 100, "eval.rows": 2, "eval.generate_rows": 0}
    cfg = load_train_config(None, {"model.model": "tiny", "data.datasets": [str(aclsum_data)], **defaults})
    assert cfg.eval.enabled and cfg.eval.every == 200
    report = train.run(cfg.model_copy(update={"output_dir": tmp_path / "run"}), events)
    assert [event.step for event in events.of(Evaluated)] == [3]  # every 200 steps, and after the last one
    # With the pixel ablation (on by default): losses on own, another row's and blank pages; no ROUGE-L here.
    (found,) = events.of(Evaluated)[0].ablation
    assert found["rows"] == 2 and found["generated_rows"] == 0 and isinstance(found["reads"], bool)
    assert set(found["conditions"]) == {"own", "other", "blank"}
    assert all(set(scores) == {"loss"} and scores["loss"]["mean"] > 0 for scores in found["conditions"].values())
    assert report.evaluations[0]["ablation"] == [found]
    assert report.best_checkpoint == tmp_path / "run" / "step-000003" and report.best_checkpoint.is_dir()

    only_end = train.run(tiny_cfg(aclsum_data, tmp_path / "end", **{**defaults, "eval.enabled": True, "eval.every": 0}))
    assert [item["step"] for item in only_end.evaluations] == [3]
    every_two = train.run(
        tiny_cfg(aclsum_data, tmp_path / "two", **{**defaults, "eval.enabled": True, "eval.every": 2})
    )
    assert [item["step"] for item in every_two.evaluations] == [2, 3]


def test_validation_loss_is_the_same_for_the_same_weights(aclsum_data: Path) -> None:
    model, processor, info = load_model("tiny")
    rows = eval_rows(resolve_dataset(str(aclsum_data), Settings()), "validation", Settings(), 3)
    cfg = tiny_cfg(aclsum_data, Path("unused"), **{"eval.generate_rows": 0})
    batcher = Batcher(processor, info, max_target_tokens=24)
    first = evaluate(model, batcher, rows, cfg, torch.device("cpu"))
    assert first == evaluate(model, batcher, rows, cfg, torch.device("cpu")) and first[1] is None


def test_clear_errors(aclsum_data: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="'nope' not found"):
        train.run(tiny_cfg([aclsum_data], tmp_path / "a", **{"data.datasets": ["nope"]}))

    bare = tmp_path / "bare"
    (bare / "data").mkdir(parents=True)
    pq.write_table(pa.table({"text": ["a"], "summary": ["b"]}), bare / "data" / "train-00000-of-00001-00000.parquet")
    with pytest.raises(DatasetError, match="no 'pages' column") as caught:
        train.run(tiny_cfg(bare, tmp_path / "b"))
    assert "deepsynth generate" in caught.value.hint

    with pytest.raises(OutputError, match="not a training checkpoint"):
        train.run(tiny_cfg(aclsum_data, tmp_path / "c", resume_from=tmp_path))
