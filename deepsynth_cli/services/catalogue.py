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


def _hub_rows(settings: Settings, keys: list[str]) -> tuple[dict[str, dict[str, int]], str]:
    """Rows per split of `{HF_USERNAME}/deepsynth-{key}` for every key whose repo exists: one listing call, then
    one manifest download per existing repo."""
    if not settings.hf_username:
        return {}, "not checked: set HF_USERNAME to see your Hub datasets"
    from deepsynth_cli.data.hub import hub_api, repo_rows

    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    api = hub_api(token)
    try:
        existing = {info.id for info in api.list_datasets(author=settings.hf_username, search=REPO_PREFIX)}
        found: dict[str, dict[str, int]] = {}
        for key in keys:
            repo_id = str(default_repo_id(settings.hf_username, key))
            if repo_id in existing:
                found[key] = repo_rows(api, repo_id) or {}
    except Exception as error:
        return {}, f"Hub not reachable ({type(error).__name__})"
    return found, "checked"


def catalogue(settings: Settings) -> Catalogue:
    specs = list_registry()
    hub_rows, status = _hub_rows(settings, [spec.key for spec in specs])
    entries = []
    for spec in specs:
        where = spec.hub_id + (f" ({spec.config})" if spec.config else "") if spec.hub_id else f"PyPI {spec.key}"
        entries.append(
            CatalogueEntry(
                key=spec.key,
                source=where,
                language=spec.language,
                splits=list(spec.splits),
                license=spec.license,
                local_rows=local_rows(settings.data_dir / spec.key),
                hub_repo=default_repo_id(settings.hf_username, spec.key),
                hub_rows=hub_rows.get(spec.key),
            )
        )
    return Catalogue(entries, status)
