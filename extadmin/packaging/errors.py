"""Refusals: the one error type for refused input or a failed step.

A refusal carries the step that refused and a plain-language reason, so the same message can
reach the browser, the API and the CLI unchanged; among several packages (a bundle, several
files) it also names the ``file`` that failed. ``status`` is the HTTP status a web layer should
answer with; the packaging layer itself never talks HTTP.
"""

from __future__ import annotations


class Refusal(Exception):
    """Refused input or a failed step: which step refused, and why, in plain words."""

    status: int = 400

    def __init__(self, step: str, reason: str, *, file: str | None = None) -> None:
        super().__init__(step, reason)
        self.step = step
        self.reason = reason
        self.file = file

    def __str__(self) -> str:
        return f"{self.file}: {self.step}: {self.reason}" if self.file else f"{self.step}: {self.reason}"

    def as_dict(self) -> dict[str, str]:
        named = {"file": self.file} if self.file else {}
        return {**named, "step": self.step, "reason": self.reason}

    def naming(self, file: str | None) -> Refusal:
        """This refusal, naming ``file`` unless it already names one (the innermost name is the precise one)."""
        if self.file is None:
            self.file = file
        return self


class Conflict(Refusal):
    """The input is fine but clashes with the current state (a same-name race, a downgrade)."""

    status = 409


class Unknown(Refusal):
    """The input names something that does not exist (a node, a package)."""

    status = 404


class TooLarge(Refusal):
    """The input exceeds a configured size limit."""

    status = 413


class NoSpace(Refusal):
    """A disk the step writes to is full (no space left on device): nothing was kept."""

    status = 507


def shown(text: str, limit: int = 200) -> str:
    """Render untrusted text for a reason: control characters escaped, long text shortened.

    Reasons end up in logs, terminals and pages; a NUL or an escape sequence copied verbatim
    would corrupt them, and a 10 KB entry name would drown the message.
    """
    if len(text) <= limit and text.isprintable():  # the usual case, checked in C: every entry name passes here
        return text
    escaped = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    if len(escaped) > limit:
        escaped = escaped[: limit - 1] + "…"
    return escaped
