"""Credential checks, only when the Hub is used: the token is there, the Hub accepts it (whoami), and it may
write to the target repos. The token itself never reaches a message."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from deepsynth_cli.settings import Settings
from deepsynth_cli.validation import Check, failed, passed, warned

_WRITE_ROLES = frozenset({"write", "admin", "fineGrained"})


def credential_checks(settings: Settings, repos: Iterable[str], *, writes: bool) -> list[Check]:
    """`hub:token`, `hub:whoami`, then `hub:write:REPO` for each target repo. Without a token, only reading
    (public repos) still works: that is a warning; pushing without one is a failure."""
    from deepsynth_cli.data.hub import _status, hub_api

    if settings.hf_token is None:
        if not writes:
            return [warned("hub:token", "low", "HF_TOKEN is not set: public datasets only", "export HF_TOKEN=hf_...")]
        return [failed("hub:token", "critical", "the Hub is the store but HF_TOKEN is not set", "export HF_TOKEN=...")]
    token = settings.hf_token.get_secret_value()
    checks = [passed("hub:token", "critical", "HF_TOKEN is set")]
    try:
        who: dict[str, Any] = hub_api(token, timeout_s=30).whoami()
    except Exception as error:
        status = _status(error)
        if status == 401:
            checks.append(failed("hub:whoami", "critical", "the Hub rejected HF_TOKEN (401)", "create a new token"))
        else:
            detail = f"HTTP {status}" if status else type(error).__name__
            checks.append(failed("hub:whoami", "critical", f"cannot reach the Hub ({detail})", "check the network"))
        return checks
    user = str(who.get("name"))
    role = str(who.get("auth", {}).get("accessToken", {}).get("role", "unknown"))
    namespaces = {user, *(str(org.get("name")) for org in who.get("orgs", []))}
    checks.append(passed("hub:whoami", "critical", f"token of {user} (role {role})"))
    for repo in dict.fromkeys(repos):
        name = f"hub:write:{repo}"
        if role not in _WRITE_ROLES:
            checks.append(failed(name, "high", f"the token is {role}, not write", "create a token with write access"))
        elif repo.split("/")[0] not in namespaces:
            checks.append(
                failed(
                    name,
                    "high",
                    f"{user} cannot write to the {repo.split('/')[0]} namespace",
                    "use a repo under your user or one of your organisations",
                )
            )
        elif role == "fineGrained":
            checks.append(warned(name, "low", "fine-grained token: permissions per repo not checked", ""))
        else:
            checks.append(passed(name, "high", f"{user} can write to {repo}"))
    return checks
