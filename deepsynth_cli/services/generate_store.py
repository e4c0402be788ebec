"""Where `deepsynth generate` puts a dataset: a local folder, and optionally a Hub repo fed from it.

The steps of the Hub side, each one small function so that the Hub wiring has one place: `plan_store` (decide
before any work), `open_hub` (client, retries, the repo), `read_remote` (what the repo holds per part),
`start_uploader` (one part's shards go up while it renders), `describe_repo` (manifest and card, once, for
every part). The upload machinery itself is `data/hub.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepsynth_cli.config import GenerateConfig
from deepsynth_cli.credentials import hub_namespace, hub_token, is_offline, require_online
from deepsynth_cli.data import hub, rendered, shards
from deepsynth_cli.data.hub import HubTarget
from deepsynth_cli.data.shards import ShardMeta
from deepsynth_cli.data.sources import Source
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.services.generate_report import EventSink, Notice
from deepsynth_cli.settings import Settings


@dataclass
class Store:
    """Where one dataset goes: a local folder, and optionally a Hub repo that the folder's shards feed."""

    folder: Path
    target: HubTarget | None = None
    token: str | None = None
    staging: bool = False  # the folder only holds shards until they are uploaded

    def describe(self) -> str:
        if self.target is None:
            return f"store: local folder {self.folder}"
        visibility = "private" if self.target.private else "public if created now"
        copy = f"staging in {self.folder}" if self.staging else f"local copy in {self.folder}"
        return f"store: Hub dataset repo {self.target.repo_id} ({visibility}); {copy}"

    def location(self) -> str:
        if self.target is None:
            return str(self.folder)
        return f"hf://datasets/{self.target.repo_id}"

    def __repr__(self) -> str:  # the token never reaches a log line, a Ray task listing or a traceback
        return f"Store(folder={self.folder!r}, target={self.target!r}, staging={self.staging})"


def plan_store(cfg: GenerateConfig, settings: Settings, source: Source, keep_local: bool) -> Store:
    """Decide, before any work, where this dataset goes (DEEPSYNTH_STORE / --store: auto, local or hub)."""
    assert cfg.out is not None
    local = Store(folder=cfg.out / source.name)
    if cfg.store == "local":
        return local
    if cfg.store == "auto" and is_offline():
        return local
    require_online("use the Hub as the store (--store hub)", ConfigError)
    token, owner = hub_token(settings), None if cfg.repo_id else hub_namespace(settings)
    repo_id = cfg.repo_id or rendered.default_repo_id(owner, source.name)
    if not token or not repo_id:
        if cfg.store == "hub":
            missing = (
                "no Hub token (HF_TOKEN or `hf auth login`)" if not token else "HF_USERNAME (or --repo-id) is not set"
            )
            raise ConfigError(f"the store is the Hub but {missing}", hint="set it in the environment or .env")
        return local
    target = HubTarget(repo_id=repo_id, private=cfg.private)
    if keep_local:
        return Store(folder=local.folder, target=target, token=token)
    staging = settings.cache_dir / "staging" / repo_id.replace("/", "__")
    return Store(folder=staging, target=target, token=token, staging=True)


@dataclass
class HubSession:
    """A client for one store's repo, with the retry policy of this run."""

    api: Any
    target: HubTarget
    retry: hub.Retry


def open_hub(store: Store, cfg: GenerateConfig, emit: EventSink, *, create: bool = True) -> HubSession | None:
    """The client for the store's repo (None for a local store); `create` makes the repo if it is missing."""
    if store.target is None:
        return None
    retry = hub.Retry(cfg.hub.attempts, cfg.hub.backoff_s, lambda message: emit(Notice(message)))
    api = hub.hub_api(store.token, cfg.hub.timeout_s)
    if create:
        hub.create_repo(api, store.target, retry)
    return HubSession(api, store.target, retry)


def read_remote(session: HubSession | None) -> dict[str, dict[str, ShardMeta]]:
    """Every part file of the repo: part file path -> {shard name: meta}; empty for a local store."""
    if session is None:
        return {}
    try:
        return hub.read_parts(session.api, session.target.repo_id)
    except Exception as error:
        raise hub.explain(error, session.target.repo_id, "reading the state of") from error


def start_uploader(
    session: HubSession,
    store: Store,
    cfg: GenerateConfig,
    remote: dict[str, dict[str, ShardMeta]],
    local: dict[str, ShardMeta],
    emit: EventSink,
    name: str,
) -> hub.ShardUploader:
    """The uploader of this part (`cfg.shard_index`), with the shards an earlier run finished but did not send
    already queued. Staged ones the repo already holds (a run killed between its commit and the deletion) go."""
    folder = store.folder
    mine = hub.metas_of_part(remote, cfg.shard_index, cfg.num_shards)
    uploader = hub.ShardUploader(
        session.api, session.target, cfg.shard_index, cfg.num_shards, mine,
        delete_after_upload=store.staging, commit_every=cfg.hub.commit_every,
        commit_interval_s=cfg.hub.commit_interval_s, retry=session.retry,
    )  # fmt: skip
    cleared = 0
    for shard, meta in sorted(local.items()):
        if meta.part != cfg.shard_index:
            continue
        if shard not in mine:
            uploader.submit(folder / shards.DATA_DIR / shard, meta)
        elif store.staging and mine[shard].fingerprint == meta.fingerprint:
            (folder / shards.DATA_DIR / shard).unlink(missing_ok=True)
            cleared += 1
    if cleared:
        emit(Notice(f"{name}: deleted {cleared} staged shard(s) the Hub already holds"))
    return uploader


def describe_repo(
    session: HubSession,
    committed: dict[str, dict[str, ShardMeta]],
    manifest_of: Any,
    name: str,
) -> int:
    """Write the manifest and the card for every part in the repo; returns the commits made.

    `committed` is what this run knows it committed (part file -> shards), laid over what the repo says;
    `manifest_of(metas)` builds the manifest. Machines splitting the work finish in any order; each one
    describes what it sees. Reading the parts again after the upload catches a machine that committed
    meanwhile, so the last description covers everything.
    """
    described: dict[str, dict[str, ShardMeta]] | None = None
    commits = 0
    for _ in range(3):
        remote = read_remote(session)
        remote.update(committed)
        if remote == described:
            break
        manifest = manifest_of([meta for _, meta in hub.all_metas_named(remote)])
        files = rendered.dataset_files(manifest)
        message = f"deepsynth: describe {name} ({len(remote)} part(s))"
        hub.upload_files(session.api, session.target, files, message, session.retry)
        described, commits = remote, commits + 1
    return commits
