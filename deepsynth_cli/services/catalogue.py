"""`deepsynth generate --list`: the registry, and what of it already exists in the local store."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepsynth_cli.data.registry import list_registry

MANIFEST = "manifest.json"


@dataclass
class CatalogueEntry:
    key: str
    source: str
    language: str
    splits: list[str]
    license: str
    local_rows: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "source": self.source,
            "language": self.language,
            "splits": self.splits,
            "license": self.license,
            "local": bool(self.local_rows),
            "local_rows": self.local_rows,
        }


def local_rows(folder: Path) -> dict[str, int]:
    """Rows per split recorded by the folder's manifest; empty when there is none (or it is unreadable)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return {name: int(split["rows"]) for name, split in manifest["splits"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def catalogue(data_dir: Path) -> list[CatalogueEntry]:
    entries = []
    for spec in list_registry():
        if spec.hub_id:
            where = spec.hub_id + (f" ({spec.config})" if spec.config else "")
        else:
            where = f"PyPI package {spec.key}"
        entries.append(
            CatalogueEntry(
                key=spec.key,
                source=where,
                language=spec.language,
                splits=list(spec.splits),
                license=spec.license,
                local_rows=local_rows(data_dir / spec.key),
            )
        )
    return entries
