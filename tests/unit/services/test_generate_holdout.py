"""`generate --holdout`: carved splits written as shards, the same for any --num-shards, loaded back with
`datasets`, recorded in the manifest, and usable by `eval` (train's use is tested in tests/unit/training)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.data.holdout import normalized
from deepsynth_cli.errors import OutputError
from deepsynth_cli.evaluation.config import EvalConfig
from deepsynth_cli.services import eval as eval_service
from deepsynth_cli.services import generate

MakeCfg = Callable[..., GenerateConfig]
TINY = RenderConfig(page_size=128, font_size=8, margin=4, max_pages=1)


def _corpus(make_jsonl: Callable[..., Path]) -> Path:
    """120 rows, 40 distinct texts: each text three times, the copies spaced apart and spaced differently."""
    rows = []
    for n in range(120):
        words = " ".join(f"word{(n % 40) * 3 + k}" for k in range(14))
        text = f"Report {n % 40}: {words}." if n % 3 else f"Report {n % 40}:\n{words}.  "
        rows.append({"id": f"row-{n:03d}", "text": text, "summary": f"Summary of report {n % 40}.", "language": "en"})
    return make_jsonl(rows, name="corpus/notes.jsonl")


def _ids_by_split(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((folder / "data").glob("*.parquet")):
        split = path.name.split("-")[0]
        found.setdefault(split, set()).update(pq.read_table(path, columns=["source_id"]).column(0).to_pylist())
    return found


def test_holdout_carves_splits_that_load_back_and_keep_duplicates_together(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], tmp_path: Path
) -> None:
    path = _corpus(make_jsonl)
    report = generate.run(generate_cfg([str(path)], holdout=(0.25, 0.25), render=TINY, rows_per_shard=16))
    folder = Path(report.datasets[0].location)
    ids = _ids_by_split(folder)
    assert set(ids) == {"train", "validation", "test"} and all(ids.values())
    assert sum(len(split) for split in ids.values()) == 120, "every row once"
    texts = {row["id"]: row["text"] for row in json_rows(path)}
    for split, members in ids.items():
        others = set().union(*(m for s, m in ids.items() if s != split))
        assert not {normalized(texts[i]) for i in members} & {normalized(texts[i]) for i in others}

    loaded = datasets.load_dataset(str(folder))
    assert {name: loaded[name].num_rows for name in loaded} == {name: len(members) for name, members in ids.items()}
    assert set(loaded["validation"]["source_split"]) == {"validation"}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["holdout"]["validation"] == 0.25 and manifest["holdout"]["test"] == 0.25
    assert manifest["fingerprint_inputs"]["holdout"] == manifest["holdout"]
    assert "carved out of the source's train rows" in (folder / "README.md").read_text()

    with pytest.raises(OutputError) as changed:  # another carving is refused, naming what changed
        generate.run(generate_cfg([str(path)], holdout=(0.1, 0.25), render=TINY, rows_per_shard=16))
    assert "holdout.validation was 0.25, now 0.1" in changed.value.message


def json_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_carving_is_the_same_across_runs_and_num_shards(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], tmp_path: Path
) -> None:
    path = _corpus(make_jsonl)
    one = generate.run(generate_cfg([str(path)], out=tmp_path / "one", holdout=(0.2, 0.3), render=TINY))
    expected = _ids_by_split(Path(one.datasets[0].location))
    for index in range(3):  # three machines' parts into one folder, as with --num-shards on a shared disk
        cfg = generate_cfg([str(path)], out=tmp_path / "three", holdout=(0.2, 0.3), render=TINY)
        part = generate.run(cfg.model_copy(update={"num_shards": 3, "shard_index": index}))
    assert _ids_by_split(Path(part.datasets[0].location)) == expected
    again = generate.run(generate_cfg([str(path)], out=tmp_path / "again", holdout=(0.2, 0.3), render=TINY))
    assert _ids_by_split(Path(again.datasets[0].location)) == expected


def test_eval_scores_the_carved_validation_split(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], tmp_path: Path
) -> None:
    path = _corpus(make_jsonl)
    report = generate.run(generate_cfg([str(path)], holdout=(0.25, 0.25), render=TINY))
    folder = Path(report.datasets[0].location)
    rows = datasets.load_dataset(str(folder), split="validation")
    predictions = tmp_path / "predictions.jsonl"
    lines = [{"id": row["source_id"], "prediction": row["summary"]} for row in rows]
    predictions.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    cfg = EvalConfig(predictions=predictions, datasets=[str(folder)], split="validation", output=tmp_path / "eval")
    metrics = eval_service.run(cfg).metrics
    (group,) = metrics["groups"]
    assert group["rows"] == len(lines) and group["rouge"]["rougeL"]["f1"]["mean"] == 1.0


def test_cli_holdout_flag_and_its_one_line_error(make_jsonl: Callable[..., Path], tmp_path: Path) -> None:
    path = _corpus(make_jsonl)
    runner = CliRunner()
    common = ["generate", str(path), "--out", str(tmp_path / "out"), "--num-workers", "1", "--json"]
    common += ["--page-size", "128", "--font-size", "8", "--max-pages", "1"]
    done = runner.invoke(app, [*common, "--holdout", "0.2,0.2"])
    assert done.exit_code == 0, done.output
    splits = json.loads(done.stdout)["datasets"][0]["rows"]
    assert set(splits) == {"train", "validation", "test"} and sum(splits.values()) == 120
    bad = runner.invoke(app, [*common, "--holdout", "0.7,0.4"])
    assert bad.exit_code == 2 and "holdout 0.7,0.4" in bad.output and "summing below 1" in bad.output


def test_a_carved_split_that_gets_no_row_is_a_warning(generate_cfg: MakeCfg, make_jsonl: Callable[..., Path]) -> None:
    rows = [{"text": f"Report {n}: " + " ".join(f"w{n}x{k}" for k in range(12)), "summary": f"About {n} here."}
            for n in range(4)]  # fmt: skip
    path = make_jsonl(rows, name="tiny/notes.jsonl")
    report = generate.run(generate_cfg([str(path)], holdout=(0.01, 0.01), render=TINY))
    carved = {name: split.rows for name, split in report.datasets[0].splits.items()}
    assert sum(carved.values()) == 4 and not carved.get("validation") and not carved.get("test")
    warnings = report.warnings()
    expected = "notes/validation: --holdout carved no rows (0.01 of 4 row(s) is about 0.04)"
    assert any(expected in line for line in warnings), warnings
    assert any("notes/test: --holdout carved no rows" in line for line in warnings), warnings
