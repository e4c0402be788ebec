"""Where the Hub token comes from, in order, and that only its source is ever shown (no Hub needed here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepsynth_cli.credentials import describe_token, find_token, hub_namespace
from deepsynth_cli.settings import get_settings

SAVED = "hf_saved_login_0123456789abcdef"


@pytest.fixture
def saved_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A token file like `hf auth login` writes; huggingface_hub read HF_TOKEN_PATH at import, so set both."""
    from huggingface_hub import constants

    path = tmp_path / "hf-login" / "token"
    path.parent.mkdir()
    path.write_text(SAVED + "\n", encoding="utf-8")
    monkeypatch.setenv("HF_TOKEN_PATH", str(path))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(path))
    return path


def test_no_token_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "absent" / "token"))
    assert find_token(get_settings()) is None
    assert describe_token(get_settings()).startswith("Hub token: none")
    assert hub_namespace(get_settings()) is None  # nothing to ask whoami with: no call, no name


def test_environment_first_then_the_saved_login(saved_login: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = find_token(get_settings())
    assert found is not None and found.value() == SAVED and found.source == f"saved login {saved_login}"
    assert describe_token(get_settings()).startswith(f"Hub token: from saved login {saved_login}")
    monkeypatch.setenv("DEEPSYNTH_HF_TOKEN", "hf_deepsynth_variable")
    found = find_token(get_settings())
    assert found is not None and (found.source, found.value()) == ("DEEPSYNTH_HF_TOKEN", "hf_deepsynth_variable")
    monkeypatch.setenv("HF_TOKEN", "hf_environment_variable")
    found = find_token(get_settings())
    assert found is not None and (found.source, found.value()) == ("HF_TOKEN", "hf_environment_variable")
    for secret in (SAVED, "hf_deepsynth_variable", "hf_environment_variable"):
        assert secret not in describe_token(get_settings()) and secret not in repr(found)


def test_hf_username_names_the_namespace_without_asking(saved_login: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_USERNAME", "someone")
    assert hub_namespace(get_settings()) == "someone"  # the Hub is unreachable here: no call was made


def test_a_call_the_client_refused_offline_is_explained() -> None:
    from huggingface_hub.errors import OfflineModeIsEnabled

    from deepsynth_cli.data.hub import explain

    error = explain(OfflineModeIsEnabled("offline"), "me/data", "uploading shards to")
    assert error.message == "HF_HUB_OFFLINE=1 is set while uploading shards to me/data"
    assert "HF_HUB_OFFLINE" in error.hint
