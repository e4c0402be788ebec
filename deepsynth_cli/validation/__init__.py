"""`deepsynth validate`: small checks, each returning one `Check`, and the score that sums them up.

A check never raises for what it inspects: a broken thing is a `fail` with a severity, a message and a hint.
Score: 100 - 10 per critical - 5 per high - 2 per medium check that did not pass (fail or warn), floored at 0.
The exit code gates CI: 1 when a critical or high check failed, else 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["pass", "warn", "fail", "skip"]
Severity = Literal["critical", "high", "medium", "low", "info"]

PENALTY: dict[str, int] = {"critical": 10, "high": 5, "medium": 2, "low": 0, "info": 0}


@dataclass(frozen=True)
class Check:
    """The outcome of one check: `severity` is how much it matters when it does not pass."""

    name: str
    status: Status
    severity: Severity
    message: str
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def passed(name: str, severity: Severity, message: str) -> Check:
    return Check(name, "pass", severity, message)


def failed(name: str, severity: Severity, message: str, hint: str) -> Check:
    return Check(name, "fail", severity, message, hint)


def warned(name: str, severity: Severity, message: str, hint: str) -> Check:
    return Check(name, "warn", severity, message, hint)


def skipped(name: str, message: str) -> Check:
    return Check(name, "skip", "info", message)


def score(checks: list[Check]) -> int:
    """100 minus the penalty of every check that failed or warned, floored at 0."""
    lost = sum(PENALTY[check.severity] for check in checks if check.status in ("fail", "warn"))
    return max(0, 100 - lost)


def exit_code(checks: list[Check]) -> int:
    """1 when a critical or high check failed (CI gates on it), else 0. Warnings never fail the run."""
    return int(any(check.status == "fail" and check.severity in ("critical", "high") for check in checks))
