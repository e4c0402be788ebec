"""Hub credentials, found the way the Hugging Face client finds them: the one place that decides which token and
which namespace a run uses, and whether the Hub may be called at all.

- The token: `HF_TOKEN` / `DEEPSYNTH_HF_TOKEN` (environment or `.env`, read by Settings), else the one
  `huggingface_hub.get_token()` finds (the saved login of `hf auth login` at `$HF_HOME/token` or `HF_TOKEN_PATH`,
  `HUGGING_FACE_HUB_TOKEN`, ...).
- The namespace: `HF_USERNAME`, else the name `whoami` gives for that token, asked once per process.
- `HF_HUB_OFFLINE=1`: no Hub call; where one is needed, a one-line error that says so.

The token is a `SecretStr` until the moment it is handed to the client; messages name where it came from, never
the token.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from deepsynth_cli.errors import DeepsynthError
from deepsynth_cli.settings import Settings

TOKEN_VARIABLES = ("HF_TOKEN", "DEEPSYNTH_HF_TOKEN")  # read by Settings, in this order
OFFLINE_HINT = "unset HF_HUB_OFFLINE (or set it to 0) to use the Hub, or work with local data (--store local)"

_WHOAMI: dict[str, dict[str, Any]] = {}  # sha256 of the token -> whoami answer, for this process
_WHOAMI_LOCK = threading.Lock()


@dataclass(frozen=True)
class HubToken:
    """A token and where it was found (`HF_TOKEN`, `saved login /path/to/token`, ...)."""

    secret: SecretStr
    source: str

    def value(self) -> str:
        """The token itself: only ever handed to the Hub client."""
        return self.secret.get_secret_value()


def find_token(settings: Settings) -> HubToken | None:
    """The token this run uses, or None when neither the environment nor huggingface_hub has one."""
    if settings.hf_token is not None and settings.hf_token.get_secret_value().strip():
        source = next((name for name in TOKEN_VARIABLES if os.environ.get(name)), ".env (HF_TOKEN)")
        return HubToken(settings.hf_token, source)
    from huggingface_hub import constants, get_token

    token = get_token()
    if not token:
        return None
    if os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        source = "HUGGING_FACE_HUB_TOKEN"
    elif Path(constants.HF_TOKEN_PATH).is_file():
        source = f"saved login {constants.HF_TOKEN_PATH}"
    else:
        source = "huggingface_hub"
    return HubToken(SecretStr(token), source)


def hub_token(settings: Settings) -> str | None:
    """The token's value for a Hub client call, or None (anonymous)."""
    found = find_token(settings)
    return found.value() if found else None


def describe_token(settings: Settings) -> str:
    """One line for the start of a run: where the token comes from (never the token)."""
    found = find_token(settings)
    if found is None:
        return "Hub token: none (no HF_TOKEN and no saved login from `hf auth login`)"
    offline = "; HF_HUB_OFFLINE=1, the Hub is not called" if is_offline() else ""
    return f"Hub token: from {found.source}{offline}"


def is_offline() -> bool:
    """`HF_HUB_OFFLINE=1` (or `TRANSFORMERS_OFFLINE=1`), as huggingface_hub itself reads it."""
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def require_online(action: str, error: type[DeepsynthError] | None = None) -> None:
    """Raise a one-line error (HubError unless `error` says otherwise) when HF_HUB_OFFLINE forbids `action`."""
    if is_offline():
        if error is None:
            from deepsynth_cli.data.hub import HubError

            error = HubError
        raise error(f"HF_HUB_OFFLINE=1 is set: cannot {action}", hint=OFFLINE_HINT)


def whoami(token: HubToken) -> dict[str, Any]:
    """The Hub's `whoami` for this token, asked once per process (a failure is not remembered: asking again is
    the caller's decision). Raises HubError offline; the client's error (with its HTTP status) otherwise."""
    require_online("ask the Hub whose token this is")
    key = hashlib.sha256(token.value().encode()).hexdigest()
    with _WHOAMI_LOCK:
        if key not in _WHOAMI:
            from deepsynth_cli.data.hub import hub_api

            _WHOAMI[key] = dict(hub_api(token.value(), timeout_s=30).whoami())
        return _WHOAMI[key]


def forget_whoami() -> None:
    """Forget the whoami answers: the next run in this process (or the next test) asks the Hub again."""
    with _WHOAMI_LOCK:
        _WHOAMI.clear()


def hub_namespace(settings: Settings, *, offline_ok: bool = False) -> str | None:
    """`HF_USERNAME`, else the user name of the token (whoami, once per process); None without either, or when
    offline and `offline_ok`. Raises HubError when the token's owner must be asked but cannot be (offline,
    rejected, unreachable)."""
    if settings.hf_username:
        return settings.hf_username
    found = find_token(settings)
    if found is None or (offline_ok and is_offline()):
        return None
    from deepsynth_cli.data.hub import HubError, _status

    try:
        return str(whoami(found)["name"])
    except HubError as error:
        raise HubError(error.message, hint=f"set HF_USERNAME, or {error.hint}") from None
    except Exception as error:
        status = _status(error)
        if status == 401:
            raise HubError(
                f"the Hub rejected the token from {found.source} (401)",
                hint="log in again with `hf auth login`, or set HF_TOKEN to a valid token",
            ) from error
        detail = f"HTTP {status}" if status else type(error).__name__
        raise HubError(
            f"cannot ask the Hub whose token this is ({detail})",
            hint="check the network, or set HF_USERNAME (or --repo-id) to name the namespace",
        ) from error
