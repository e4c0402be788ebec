"""Find a rendered dataset by name, the same way for every command: the local store first, then the Hub.

`train`, `eval` and `validate` take names like `mlsum_fr`; this module turns such a name into a place and
loads its splits with `datasets` (streaming works for both).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from deepsynth_cli.credentials import hub_namespace, hub_token, require_online
from deepsynth_cli.data.rendered import default_repo_id
from deepsynth_cli.data.shards import DATA_DIR
from deepsynth_cli.errors import DatasetError
from deepsynth_cli.settings import Settings

_HF_URL = re.compile(r"^hf://datasets/(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<rev>[^/]+))?/?$")
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass(frozen=True)
class DatasetLocation:
    """Where a rendered dataset lives."""

    name: str
    kind: Literal["local", "hub"]
    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None

    def __str__(self) -> str:
        if self.kind == "local":
            return str(self.path)
        return f"hf://datasets/{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


def _is_dataset_folder(path: Path) -> bool:
    return path.is_dir() and (path / DATA_DIR).is_dir()


def _token(settings: Settings) -> str | None:
    return hub_token(settings)


def _repo_exists(repo_id: str, settings: Settings) -> bool:
    from deepsynth_cli.data.hub import hub_api

    require_online(f"look for {repo_id}", DatasetError)
    try:
        return bool(hub_api(_token(settings)).repo_exists(repo_id, repo_type="dataset"))
    except Exception as error:  # offline, DNS, 5xx: say so instead of "not found"
        raise DatasetError(
            f"cannot reach the Hub to look for {repo_id} ({type(error).__name__})",
            hint="check the network and HF_TOKEN, or use a local dataset folder",
        ) from error


def resolve_dataset(name: str, settings: Settings) -> DatasetLocation:
    """Resolve NAME: `hf://datasets/owner/repo[@rev]`, a dataset folder, `DEEPSYNTH_DATA_DIR/NAME`, a Hub repo id,
    then `{HF_USERNAME}/deepsynth-NAME` on the Hub. Raises DatasetError saying where it looked."""
    url = _HF_URL.match(name)
    if url:
        return DatasetLocation(name=url["repo"].split("/")[1], kind="hub", repo_id=url["repo"], revision=url["rev"])
    path = Path(name).expanduser()
    if _is_dataset_folder(path):
        return DatasetLocation(name=path.name, kind="local", path=path)
    in_store = settings.data_dir / name
    if _is_dataset_folder(in_store):
        return DatasetLocation(name=name, kind="local", path=in_store)
    looked = [str(path), str(in_store)]
    if _REPO_ID.match(name) and not path.exists():
        if _repo_exists(name, settings):
            return DatasetLocation(name=name.split("/")[1], kind="hub", repo_id=name)
        looked.append(f"hf://datasets/{name}")
    elif "/" not in name and (owner := hub_namespace(settings, offline_ok=True)):
        repo_id = str(default_repo_id(owner, name))
        if _repo_exists(repo_id, settings):
            return DatasetLocation(name=name, kind="hub", repo_id=repo_id)
        looked.append(f"hf://datasets/{repo_id}")
    raise DatasetError(
        f"rendered dataset {name!r} not found (looked in: {', '.join(looked)})",
        hint=f"run `deepsynth generate {name}` first, or give a dataset folder or hf://datasets/OWNER/REPO",
    )


def load_split(location: DatasetLocation, split: str, settings: Settings, *, streaming: bool = False) -> Any:
    """One split as a `datasets.Dataset` (or `IterableDataset` when streaming), pages decoded as PIL images."""
    import datasets

    try:
        if location.kind == "local":
            return datasets.load_dataset(str(location.path), split=split, streaming=streaming)
        return datasets.load_dataset(
            location.repo_id, split=split, revision=location.revision, streaming=streaming, token=_token(settings)
        )
    except ValueError as error:  # datasets says "Unknown split" with the available ones
        raise DatasetError(f"{location}: {error}", hint="pick one of the splits it names") from error
    except Exception as error:
        raise DatasetError(
            f"cannot load {location} ({type(error).__name__})",
            hint="check the network and HF_TOKEN for Hub datasets; rerun generate for a damaged local folder",
        ) from error


def require_columns(
    columns: Sequence[str], required: Sequence[str], location: DatasetLocation, split: str, hint: str
) -> None:
    """DatasetError naming the `required` columns a split lacks: it is not what `deepsynth generate` writes."""
    missing = [name for name in required if name not in columns]
    if missing:
        raise DatasetError(
            f"{location} ({split}) has no {', '.join(repr(name) for name in missing)} column: it is not a rendered "
            f"dataset (columns: {', '.join(columns)})",
            hint=hint,
        )
