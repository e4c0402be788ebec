"""Where `deepsynth generate` puts a dataset: a local folder, and optionally a Hub repo fed from it.

The steps of the Hub side, each one small function so that the Hub wiring has one place: `plan_store` (decide
before any work), `open_hub` (client, retries, the repo), `read_remote` (what the repo holds per part),
`start_committer` (the run's one committer of the repo, here or a Ray actor), `start_uploader` (one part's
shards are pre-uploaded while it renders and handed to that committer), `describe_repo` (manifest and card,
once, for every part, in the last commit). The machinery itself is `data/hub.py` and `data/hub_commits.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepsynth_cli.config import GenerateConfig
from deepsynth_cli.credentials import hub_namespace, hub_token, is_offline, require_online
from deepsynth_cli.data import hub, hub_commits, rendered, shards
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
    sink: hub_commits.CommitSink,
) -> hub_commits.ShardUploader:
    """The uploader of this part (`cfg.shard_index`): it pre-uploads the part's shards as they finish and hands
    them to `sink`, the run's one committer. Shards an earlier run finished but did not send are queued first;
    staged ones the repo already holds (a run killed between its commit and the deletion) go."""
    folder = store.folder
    mine = hub.metas_of_part(remote, cfg.shard_index, cfg.num_shards)
    uploader = hub_commits.ShardUploader(
        session.api, session.target, cfg.shard_index, cfg.num_shards, mine, sink=sink, retry=session.retry,
        delete_after_commit=store.staging, batch=cfg.hub.commit_every,
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


def start_committer(session: HubSession, store: Store, cfg: GenerateConfig, emit: EventSink) -> hub_commits.Committer:
    """The one committer of this dataset's repo, for every part of the run: in this process, or a Ray actor
    with `--executor ray` (the parts' tasks then hand over to it from any machine)."""
    if cfg.executor == "ray":
        notify = session.retry.notify
        return hub_commits.RayCommitter.start(store.token, session.target, cfg.hub, notify)
    return hub_commits.HubCommitter.from_config(session.api, session.target, cfg.hub, session.retry)


def describe_repo(committer: hub_commits.Committer, header: dict[str, Any], page_size: int) -> int:
    """Close `committer` with the manifest and the card of every part in the repo, written once, in the commit
    that carries the last shards (see `HubCommitter.close`). Returns the commits the committer made."""
    committer.close(Description(header, page_size))
    return committer.commits


@dataclass(frozen=True)
class Description:
    """Every part's shards -> manifest and card. Plain data, so it pickles to a committer in a Ray actor."""

    header: dict[str, Any]
    page_size: int

    def __call__(self, parts: dict[str, dict[str, ShardMeta]]) -> dict[str, bytes]:
        metas = [meta for _, meta in hub.all_metas_named(parts)]
        return rendered.dataset_files(rendered.build_manifest(metas, self.header, self.page_size))
