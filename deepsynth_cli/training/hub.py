"""`deepsynth train --push-to-hub REPO`: the final model folder to a Hub model repo, with a model card.

What goes up is the final model only (the top-level files of the output folder: weights, config, processor,
tokenizer, `deepsynth_preset.json`, `train_config.json` and the card), never the `step-NNNNNN/` checkpoints. The
client comes from the project's one Hub seam (`deepsynth_cli.data.hub.hub_api`) with its retries and its
token-free error messages; the token comes from `deepsynth_cli.credentials` and is handed to the client only,
never written to the card, a message or a log line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from deepsynth_cli.credentials import hub_namespace, hub_token, require_online
from deepsynth_cli.data.hub import HubError, HubTarget, Retry, explain, hub_api
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.models.preset_config import PRESETS, REAL_MODEL_ID, TINY
from deepsynth_cli.settings import Settings
from deepsynth_cli.training.config import TrainConfig
from deepsynth_cli.training.events import TrainReport

CARD_FILE = "README.md"
# Top-level files only: checkpoints (step-NNNNNN/), partial saves (.step-*) and anything else in sub-folders
# (trackers' logs) stay local. fnmatch's `*` matches `/`, so "*/*" is every file below the top level.
IGNORE_PATTERNS = ["*/*", ".*"]
# Run fields that describe this machine, not the training: left out of the card.
_LOCAL_FIELDS = ("output_dir", "resume", "resume_from", "push_to_hub", "hub_private", "hub")


def resolve_repo_id(name: str, settings: Settings) -> str:
    """OWNER/NAME as given, or NAME under HF_USERNAME, else under the token's user (whoami)."""
    if "/" in name:
        return name
    owner = hub_namespace(settings)
    if not owner:
        raise ConfigError(
            f"--push-to-hub {name} names no owner, and there is no HF_USERNAME nor a Hub token to ask",
            hint=f"give OWNER/{name}, or set HF_USERNAME, or log in with `hf auth login`",
        )
    return f"{owner}/{name}"


def base_model(cfg: TrainConfig) -> str | None:
    """The Hub id the run started from, when there is one (the tiny preset and local folders have none)."""
    name = cfg.model.model
    if name == TINY:
        return None
    if name in PRESETS:
        source = PRESETS[name].model
        return source if source != TINY else None
    if name == REAL_MODEL_ID or (not Path(name).exists() and name.count("/") == 1):
        return name
    return None


def _dataset_facts(cfg: TrainConfig, settings: Settings) -> tuple[list[str], list[str], list[str]]:
    """(Hub dataset ids, languages, lines describing each dataset) of the training data."""
    from deepsynth_cli.data.store import resolve_dataset

    hub_ids: list[str] = []
    languages: list[str] = []
    lines: list[str] = []
    for name in cfg.data.datasets:
        try:
            location = resolve_dataset(name, settings)
        except Exception:  # the run resolved it a minute ago; a card must not fail the push
            lines.append(f"- `{name}`")
            continue
        source: dict[str, Any] = {}
        if location.kind == "hub" and location.repo_id:
            hub_ids.append(location.repo_id)
            lines.append(f"- [`{location.repo_id}`](https://huggingface.co/datasets/{location.repo_id})")
        else:
            lines.append(f"- `{location.name}` (a local folder rendered by `deepsynth generate`)")
            from deepsynth_cli.data.rendered import read_local_manifest

            manifest = read_local_manifest(location.path) if location.path else None
            source = (manifest or {}).get("source") or {}
        language = str(source.get("language") or "").split("-")[0]
        if language and language != "und" and language not in languages:
            languages.append(language)
    return hub_ids, languages, lines


def model_card(cfg: TrainConfig, report: TrainReport, settings: Settings, repo_id: str) -> str:
    """README.md of the pushed model: YAML metadata, data, settings, final metrics and how to load it."""
    hub_ids, languages, dataset_lines = _dataset_facts(cfg, settings)
    base = base_model(cfg)
    metadata: dict[str, Any] = {"library_name": "transformers", "pipeline_tag": "image-text-to-text"}
    if base:
        metadata["base_model"] = base
    if hub_ids:
        metadata["datasets"] = hub_ids
    if languages:
        metadata["language"] = languages
    metadata["tags"] = ["deepsynth", "summarization", "deepseek-ocr-2"] + (["lora"] if cfg.lora else [])

    settings_dump = cfg.model_dump(mode="json", exclude=set(_LOCAL_FIELDS))
    metrics: dict[str, Any] = {
        "steps": report.steps,
        "samples": report.samples,
        "final_train_loss": report.final_loss,
    }
    if report.evaluations:
        last = report.evaluations[-1]
        metrics.update(
            {"eval_step": last["step"], "validation_loss": last["loss"], "validation_rougeL": last["rougeL"]}
        )
        if last.get("ablation"):  # own pages beat another row's and blank ones (evaluation/ablation.py)
            metrics["validation_reads_pages"] = all(found["reads"] for found in last["ablation"])
    if report.best_checkpoint is not None:
        metrics["best_checkpoint_step"] = int(report.best_checkpoint.name.split("-")[-1])
    lora = (
        f"LoRA (r={cfg.lora.r}, alpha={cfg.lora.alpha}) on the language model, merged into the weights: "
        "the repo holds a plain model, no peft needed to load it.\n\n"
        if cfg.lora
        else ""
    )
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip()
    return f"""---
{front}
---

# {repo_id.split("/")[-1]}

A DeepSeek-OCR-2 model fine-tuned by `deepsynth train` to read rendered document pages and write their
summaries. Base: {f"[`{base}`](https://huggingface.co/{base})" if base else f"`{cfg.model.model}`"}.

{lora}
## Data

{chr(10).join(dataset_lines)}

Training split `{cfg.data.train_split}`, evaluation on `{cfg.data.eval_split}` (never `test`).

## Settings

The resolved training configuration:

```json
{json.dumps(settings_dump, indent=2, sort_keys=True)}
```

## Metrics

```json
{json.dumps(metrics, indent=2, sort_keys=True)}
```

## Use

```python
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained("{repo_id}")
processor = AutoProcessor.from_pretrained("{repo_id}")
```

The prompt the model was trained with: one image placeholder per page, then the instruction stored in
`deepsynth_preset.json`; `deepsynth_cli.models.presets.load_model("{repo_id}")` reads it back with the weights.
"""


def push_model(
    folder: Path,
    target: HubTarget,
    card: str,
    settings: Settings,
    *,
    attempts: int,
    backoff_s: float,
    timeout_s: float,
    notify: Callable[[str], None],
) -> str:
    """Write the card into `folder`, create the model repo if needed and upload the final model in one commit.
    Returns the repo's URL. A failure raises a token-free HubError; the local model is kept."""
    (folder / CARD_FILE).write_text(card, encoding="utf-8")
    require_online(f"push the model to {target.repo_id}")
    api = hub_api(hub_token(settings), timeout_s)
    retry = Retry(attempts=attempts, backoff_s=backoff_s, notify=notify)
    kept = f"the trained model is kept in {folder}"
    try:
        url = retry.run(
            lambda: api.create_repo(target.repo_id, repo_type="model", private=target.private, exist_ok=True)
        )
    except Exception as error:
        raise _kept(explain(error, target.repo_id, "creating"), kept) from error
    try:
        retry.run(
            lambda: api.upload_folder(
                repo_id=target.repo_id,
                folder_path=str(folder),
                repo_type="model",
                commit_message="deepsynth train: upload the fine-tuned model",
                ignore_patterns=IGNORE_PATTERNS,
            )
        )
    except Exception as error:
        raise _kept(explain(error, target.repo_id, "uploading the model to"), kept) from error
    return str(url)


def _kept(error: HubError, kept: str) -> HubError:
    # explain() speaks of shards (generate); here the model folder is what is kept.
    hint = (
        error.hint if error.hint and "shards" not in error.hint else "run the same command with --resume to push again"
    )
    return HubError(error.message, hint=f"{hint}; {kept}")
