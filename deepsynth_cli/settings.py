"""Settings from the environment and `.env`: secrets, paths and machine-wide defaults.

Every variable is listed in `.env.example`. Secrets are `SecretStr`: they never print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEEPSYNTH_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("deepsynth-data"), description="where `generate` writes and others read datasets")
    num_workers: int = Field(1, ge=1, le=256, description="default render processes for `generate`")
    debug: bool = Field(False, description="show tracebacks for errors")
    store: Literal["auto", "local", "hub"] = Field(
        "auto",
        description="where generated datasets go: auto = the Hub when a token (HF_TOKEN or `hf auth login`) is found",
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "deepsynth", description="staging area for shards on their way to the Hub"
    )
    hf_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("HF_TOKEN", "DEEPSYNTH_HF_TOKEN"),
        description="Hugging Face token (unset: huggingface_hub's saved login)",
    )
    hf_username: str | None = Field(
        None,
        validation_alias=AliasChoices("HF_USERNAME", "DEEPSYNTH_HF_USERNAME"),
        description="Hub namespace (unset: the token's user)",
    )
    api_key: SecretStr | None = Field(
        None, description="`serve`: when set, every API call needs `Authorization: Bearer <key>`"
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="`serve`: origins allowed to call the API from a browser (none: CORS off)"
    )


def get_settings() -> Settings:
    """Read the environment now (not at import), so tests and subprocesses see their own values."""
    return Settings()
