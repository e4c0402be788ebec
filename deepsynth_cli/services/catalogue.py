"""`deepsynth generate --list`: the registry, and what of it already exists locally and on the Hub."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsynth_cli.data.registry import list_registry
from deepsynth_cli.data.rendered import REPO_PREFIX, default_repo_id
from deepsynth_cli.errors import DeepsynthError
from deepsynth_cli.settings import Settings


@dataclass
class CatalogueEntry:
    key: str
    source: str
    language: str
    splits: list[str]
    license: str
    local_rows: dict[str, int] = field(default_factory=dict)
    hub_repo: str | None = None
    hub_rows: dict[str, int] | None = None  # None: not on the Hub (or not known)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "source": self.source,
            "language": self.language,
            "splits": self.splits,
            "license": self.license,
            "local": bool(self.local_rows),
            "local_rows": self.local_rows,
            "hub_repo": self.hub_repo,
            "hub": self.hub_rows is not None,
            "hub_rows": self.hub_rows or {},
        }


@dataclass
class Catalogue:
    entries: list[CatalogueEntry]
    hub_status: str  # "checked", "no HF_USERNAME", or why the Hub could not be asked

    def to_dict(self) -> dict[str, Any]:
        return {"datasets": [entry.to_dict() for entry in self.entries], "hub_status": self.hub_status}


def local_rows(folder: Path) -> dict[str, int]:
    """Rows per split recorded by the folder's manifest; empty when there is none (or it is unreadable)."""
    from deepsynth_cli.data.rendered import manifest_rows, read_local_manifest

    try:
        return manifest_rows(read_local_manifest(folder))
    except (OSError, DeepsynthError):
        return {}


def _hub_rows(settings: Settings, keys: list[str], owner: str | None) -> tuple[dict[str, dict[str, int]], str]:
    """Rows per split of `{owner}/deepsynth-{key}` for every key whose repo exists: one listing call, then
    one manifest download per existing repo."""
    if not owner:
        return {}, "not checked: set HF_USERNAME, or log in with `hf auth login`, to see your Hub datasets"
    from deepsynth_cli.credentials import hub_token
    from deepsynth_cli.data.hub import hub_api, repo_rows

    api = hub_api(hub_token(settings))
    try:
        existing = {info.id for info in api.list_datasets(author=owner, search=REPO_PREFIX)}
        found: dict[str, dict[str, int]] = {}
        for key in keys:
            repo_id = str(default_repo_id(owner, key))
            if repo_id in existing:
                found[key] = repo_rows(api, repo_id) or {}
    except Exception as error:
        return {}, f"Hub not reachable ({type(error).__name__})"
    return found, "checked"


def catalogue(settings: Settings) -> Catalogue:
    from deepsynth_cli.credentials import hub_namespace

    specs = list_registry()
    try:  # HF_USERNAME, else the token's user; offline: not checked
        owner = hub_namespace(settings, offline_ok=True)
        hub_rows, status = _hub_rows(settings, [spec.key for spec in specs], owner)
    except DeepsynthError as error:  # the token's user could not be asked (rejected, unreachable)
        owner, hub_rows, status = None, {}, f"not checked: {error.message}"
    entries = []
    from deepsynth_cli.services.generate import output_split  # the one home of split names (val -> validation)

    for spec in specs:
        where = spec.hub_id + (f" ({spec.config})" if spec.config else "") if spec.hub_id else f"PyPI {spec.key}"
        entries.append(
            CatalogueEntry(
                key=spec.key,
                source=where,
                language=spec.language,
                splits=[output_split(split) for split in spec.splits],  # as the folder names them
                license=spec.license,
                local_rows=local_rows(settings.data_dir / spec.key),
                hub_repo=default_repo_id(owner, spec.key),
                hub_rows=hub_rows.get(spec.key),
            )
        )
    return Catalogue(entries, status)
