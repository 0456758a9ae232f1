"""One line of the check's report: a finding or a rule, whether it passed, where, and what fixes it."""

from __future__ import annotations

from dataclasses import dataclass, replace

PASS = "pass"  # noqa: S105 (a result, not a password)
FAIL = "FAIL"
WAIVED = "waived"


@dataclass(frozen=True)
class Finding:
    check: str  # a rule id, or the kind of finding: schema, duplicate-key, kubespawner-option, ...
    result: str  # PASS, FAIL or WAIVED
    where: str  # file:line that set the value, or "" when no values file did
    message: str  # what was found, with the key path
    fix: str = ""  # the YAML (or the step) that fixes it

    @property
    def failed(self) -> bool:
        return self.result == FAIL

    def waived(self, reason: str) -> Finding:
        return replace(self, result=WAIVED, message=f"{self.message} (waived in hub.toml: {reason})")


def failure(check: str, where: object, message: str, fix: str = "") -> Finding:
    return Finding(check, FAIL, "" if where is None else str(where), message, fix)


def passed(check: str, where: object, message: str) -> Finding:
    return Finding(check, PASS, "" if where is None else str(where), message)
