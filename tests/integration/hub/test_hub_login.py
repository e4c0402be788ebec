"""Credentials the way the Hub client finds them: the saved login of `hf auth login` (`$HF_HOME/token`) and the
token's `whoami` name, with no HF_TOKEN and no HF_USERNAME, against the loopback Hub with the real clients."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pytest
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from deepsynth_cli.config import GenerateConfig, HubConfig
from deepsynth_cli.credentials import find_token, hub_namespace
from deepsynth_cli.data.hub import HubError
from deepsynth_cli.data.store import resolve_dataset
from deepsynth_cli.errors import DatasetError
from deepsynth_cli.services import generate
from deepsynth_cli.services.catalogue import catalogue
from deepsynth_cli.settings import get_settings
from deepsynth_cli.training.hub import resolve_repo_id
from deepsynth_cli.validation.credentials import credential_checks
from tests.support.hub_fixture import HubEnv

pytestmark = pytest.mark.hub
QUICK = HubConfig(backoff_s=0.01, attempts=2, timeout_s=10)
USER = "logged-in-user"


@pytest.fixture
def login(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> str:
    """`hf auth login` done: a token of USER saved at $HF_HOME/token; no HF_TOKEN, no HF_USERNAME. A fresh token
    per test, so no whoami answer cached by an earlier test in this process can stand in for this one."""
    token = hub_env.server.add_token(role="write", user=USER)
    (hub_env.cache_dir / "token").write_text(token + "\n", encoding="utf-8")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_USERNAME", raising=False)
    return token


def _whoami_calls(hub: HubEnv) -> int:
    return len(hub.server.requests_to("GET", r"/api/whoami-v2"))


def _offline(hub: HubEnv) -> None:
    from huggingface_hub import constants

    hub.monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # for children
    hub.monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # this process read it at import


def test_the_saved_login_is_found_and_named_never_shown(hub_env: HubEnv, login: str) -> None:
    found = find_token(get_settings())
    assert found is not None and found.value() == login
    assert found.source == f"saved login {hub_env.cache_dir / 'token'}"
    assert login not in repr(found) and login not in str(found.secret)
    hub_env.monkeypatch.setenv("HF_TOKEN", "hf_from_the_environment")  # the environment wins over the login
    found = find_token(get_settings())
    assert found is not None and (found.source, found.value()) == ("HF_TOKEN", "hf_from_the_environment")


def test_generate_lands_in_the_whoami_namespace_asking_once(
    hub_env: HubEnv, login: str, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    first = make_jsonl([article(i) for i in range(3)], name="first/train.jsonl")
    second = make_jsonl([article(i) for i in range(2)], name="second/train.jsonl")
    result = CliRunner().invoke(
        app, ["generate", str(first), str(second), "--page-size", "256", "--font-size", "11", "--max-pages", "2"]
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"Hub token: from saved login {hub_env.cache_dir / 'token'}", lines[:3]
    assert f"store: Hub dataset repo {USER}/deepsynth-first" in result.stderr
    assert _whoami_calls(hub_env) == 1, "two datasets, one run: whoami is asked once"
    assert datasets.load_dataset(f"{USER}/deepsynth-first", split="train").num_rows == 3
    assert datasets.load_dataset(f"{USER}/deepsynth-second", split="train").num_rows == 2
    # Names resolve in the same namespace without HF_USERNAME, and the cached answer is reused.
    location = resolve_dataset("first", get_settings())
    assert (location.kind, location.repo_id) == ("hub", f"{USER}/deepsynth-first")
    assert resolve_repo_id("my-model", get_settings()) == f"{USER}/my-model"
    listed = catalogue(get_settings())  # `generate --list`: your Hub datasets, found without HF_USERNAME
    assert listed.hub_status == "checked" and listed.entries[0].hub_repo == f"{USER}/deepsynth-{listed.entries[0].key}"
    assert _whoami_calls(hub_env) == 1
    # The saved token is a secret like HF_TOKEN: never printed, never written.
    assert login not in result.stdout + result.stderr
    written = [p for p in Path(get_settings().cache_dir).rglob("*") if p.is_file()]
    assert not [p for p in written if login.encode() in p.read_bytes()]
    for repo in ("first", "second"):
        repo_id = f"{USER}/deepsynth-{repo}"
        assert not [
            f for f in hub_env.server.list_files(repo_id) if login.encode() in hub_env.server.read_file(repo_id, f)
        ]
    for request in hub_env.server.requests:
        assert login not in request.path and login not in str(request.query)
    assert f"Bearer {login}" in hub_env.server.authorization_headers()


def test_without_a_login_auto_stays_local_and_says_so(
    hub_env: HubEnv, generate_cfg: Callable[..., GenerateConfig], make_jsonl: Callable[..., Path]
) -> None:
    hub_env.monkeypatch.delenv("HF_TOKEN")
    events: list[Any] = []
    corpus = make_jsonl(
        [{"text": "A short text of a dozen words, enough for the default minimum.", "summary": "A summary."}]
    )
    generate.run(generate_cfg([str(corpus)]), events.append)
    messages = [str(getattr(event, "message", "")) for event in events]
    assert messages[0].startswith("Hub token: none"), messages[:2]
    assert any("store: local folder" in message for message in messages)
    assert hub_env.server.requests == []


def test_offline_mode_calls_nothing_and_says_why(
    hub_env: HubEnv, login: str, make_jsonl: Callable[..., Path], tmp_path: Path
) -> None:
    _offline(hub_env)
    corpus = make_jsonl(
        [{"text": "A short text of a dozen words, enough for the default minimum.", "summary": "A summary."}]
    )
    args = ["generate", str(corpus), "--page-size", "256", "--out", str(tmp_path / "out")]
    auto = CliRunner().invoke(app, args)
    assert auto.exit_code == 0, auto.stderr
    assert auto.stderr.splitlines()[0].endswith("HF_HUB_OFFLINE=1, the Hub is not called")
    assert "store: local folder" in auto.stderr
    forced = CliRunner().invoke(app, [*args, "--store", "hub"])
    assert forced.exit_code == 2
    errors = [line for line in forced.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: HF_HUB_OFFLINE=1 is set: cannot use the Hub as the store (--store hub)"]
    with pytest.raises(HubError, match="HF_HUB_OFFLINE=1 is set: cannot ask the Hub whose token this is"):
        hub_namespace(get_settings())
    with pytest.raises(HubError, match="HF_HUB_OFFLINE=1 is set"):
        resolve_repo_id("my-model", get_settings())  # `train --push-to-hub NAME` needs whoami for the owner
    with pytest.raises(DatasetError, match="HF_HUB_OFFLINE=1 is set: cannot look for someone/data"):
        resolve_dataset("someone/data", get_settings())
    checks = {check.name: check for check in credential_checks(get_settings(), {"x": "dataset"}, writes=True)}
    assert checks["hub:whoami"].status == "fail" and "HF_HUB_OFFLINE" in checks["hub:whoami"].message
    assert hub_env.server.requests == [], "offline: not one request"
    assert login not in auto.stderr + forced.stderr


def test_validate_checks_the_saved_login(hub_env: HubEnv, login: str) -> None:
    checks = {c.name: c for c in credential_checks(get_settings(), {"deepsynth-x": "dataset"}, writes=True)}
    assert checks["hub:token"].message == f"token from saved login {hub_env.cache_dir / 'token'}"
    assert checks["hub:whoami"].status == "pass" and USER in checks["hub:whoami"].message
    assert checks[f"hub:write:{USER}/deepsynth-x"].status == "pass"
    assert login not in " ".join(c.message + c.hint for c in checks.values())


def test_a_rejected_saved_login_is_a_clear_error(hub_env: HubEnv, login: str) -> None:
    (hub_env.cache_dir / "token").write_text("hf_revoked_long_ago_0000000000", encoding="utf-8")
    with pytest.raises(HubError) as raised:
        hub_namespace(get_settings())
    assert raised.value.message == f"the Hub rejected the token from saved login {hub_env.cache_dir / 'token'} (401)"
    assert "hf auth login" in raised.value.hint and "hf_revoked" not in raised.value.message + raised.value.hint


@pytest.mark.integration
def test_a_new_process_after_hf_auth_login(
    hub_env: HubEnv, login: str, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    """What a user runs: a fresh `deepsynth generate` process, HF_HOME holding the saved login, nothing else."""
    corpus = make_jsonl([article(i) for i in range(2)])
    environ = {name: value for name, value in os.environ.items() if name not in ("HF_TOKEN", "HF_USERNAME")}
    args = [sys.executable, "-m", "deepsynth_cli", "generate", str(corpus), "--page-size", "256", "--font-size", "11"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=240, env=environ)
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines()[0] == f"Hub token: from saved login {hub_env.cache_dir / 'token'}"
    assert _whoami_calls(hub_env) == 1
    assert datasets.load_dataset(f"{USER}/deepsynth-corpus", split="train").num_rows == 2
    assert login not in run.stdout + run.stderr
