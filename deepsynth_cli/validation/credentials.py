"""Credential checks, only when the Hub is used: the token is there, the Hub accepts it (whoami), and it may
write to the target repos. The token itself never reaches a message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deepsynth_cli.credentials import OFFLINE_HINT
from deepsynth_cli.settings import Settings
from deepsynth_cli.validation import Check, failed, passed, warned

_WRITE_ROLES = frozenset({"write", "admin"})
WRITE_PERMISSION = "repo.write"  # what a fine-grained token needs on the repo, or on its user or organisation


def credential_checks(settings: Settings, repos: Mapping[str, str], *, writes: bool) -> list[Check]:
    """`hub:token`, `hub:whoami`, then `hub:write:REPO` for each target repo (repo id -> "dataset" or "model"; a
    bare NAME is under the token's user). The token is the one `deepsynth_cli.credentials` finds (HF_TOKEN, else
    the saved login). Without a token, only reading (public repos) still works: that is a warning; pushing
    without one is a failure. HF_HUB_OFFLINE=1 asks nothing of the Hub: whoami fails (writes) or warns."""
    from deepsynth_cli.credentials import find_token, is_offline, whoami
    from deepsynth_cli.data.hub import _status

    found = find_token(settings)
    login = "set HF_TOKEN=hf_... or run `hf auth login`"
    if found is None:
        if not writes:
            return [warned("hub:token", "low", "no Hub token (HF_TOKEN, saved login): public datasets only", login)]
        return [failed("hub:token", "critical", "the Hub is the store but there is no Hub token", login)]
    checks = [passed("hub:token", "critical", f"token from {found.source}")]
    if is_offline():
        message, hint = "HF_HUB_OFFLINE=1 is set: the token is not checked with the Hub", OFFLINE_HINT
        checks.append(
            failed("hub:whoami", "critical", message, hint) if writes else warned("hub:whoami", "low", message, hint)
        )
        return checks
    try:
        who: dict[str, Any] = whoami(found)
    except Exception as error:
        status = _status(error)
        if status == 401:
            message = f"the Hub rejected the token from {found.source} (401)"
            checks.append(failed("hub:whoami", "critical", message, "create a new token, or `hf auth login` again"))
        else:
            detail = f"HTTP {status}" if status else type(error).__name__
            checks.append(failed("hub:whoami", "critical", f"cannot reach the Hub ({detail})", "check the network"))
        return checks
    user = str(who.get("name"))
    access = who.get("auth", {}).get("accessToken", {})
    role = str(access.get("role", "unknown"))
    namespaces = {user, *(str(org.get("name")) for org in who.get("orgs", []))}
    checks.append(passed("hub:whoami", "critical", f"token of {user} (role {role})"))
    for repo, repo_type in repos.items():
        repo = repo if "/" in repo else f"{user}/{repo}"
        checks.append(_write_check(repo, repo_type, user, role, namespaces, access))
    return checks


def _write_check(repo: str, repo_type: str, user: str, role: str, namespaces: set[str], access: Any) -> Check:
    """`hub:write:REPO`: a write token in one of the user's namespaces, or a fine-grained token whose scopes give
    `repo.write` on that repo or its namespace."""
    name, owner = f"hub:write:{repo}", repo.split("/")[0]
    if role == "fineGrained":
        scopes = access.get("fineGrained", {}).get("scoped", [])
        granted = [
            f"{scope['entity'].get('type')} {scope['entity'].get('name')}"
            for scope in scopes
            if WRITE_PERMISSION in scope.get("permissions", [])
        ]
        for scope in scopes:
            kind, target = scope.get("entity", {}).get("type"), scope.get("entity", {}).get("name")
            covers = (kind in ("user", "org") and target == owner) or (kind == repo_type and target == repo)
            if covers and WRITE_PERMISSION in scope.get("permissions", []):
                return passed(name, "high", f"fine-grained token: {WRITE_PERMISSION} on {kind} {target}")
        return failed(
            name,
            "high",
            f"the fine-grained token of {user} may not write to the {repo_type} {repo} "
            f"({WRITE_PERMISSION} only on: {', '.join(granted) or 'nothing'})",
            f"give the token {WRITE_PERMISSION} on {repo} or on {owner} (hf.co/settings/tokens)",
        )
    if role not in _WRITE_ROLES:
        return failed(name, "high", f"the token is {role}, not write", "create a token with write access")
    if owner not in namespaces:
        return failed(
            name,
            "high",
            f"{user} cannot write to the {owner} namespace",
            "use a repo under your user or one of your organisations",
        )
    return passed(name, "high", f"{user} can write to {repo}")
