"""The rollout policy: canary nodes, batch size, failures before a halt, activation mode.

Where it comes from, the first that says: the import's own fields (``--canary``, ``--batch``,
``--max-failures``, ``--activation``, the same in the upload form and the API), field by field over
the cluster default (the console's settings page and ``/api/rollouts/policy/``), itself over
``EXTADMIN_ROLLOUT``. The default of all (no canary, batch = every node, never halt, each node
activates as it installs) is the platform's own behaviour: no rollout is made for it.

``EXTADMIN_ROLLOUT`` is written like the command line's options, space separated:
``EXTADMIN_ROLLOUT="canary=node-1 batch=2 max-failures=1 activation=together"``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from extadmin.packaging import Refusal
from extadmin.packaging.errors import shown

STEP = "rollout"
EACH, TOGETHER = "each", "together"
ACTIVATIONS = (EACH, TOGETHER)
KEYS = ("canary", "batch", "max-failures", "activation")


@dataclass(frozen=True)
class Policy:
    canary: tuple[str, ...] = ()
    batch: int | None = None  # None: every node in one batch
    max_failures: int | None = None  # None: never halt
    activation: str = EACH

    @property
    def is_default(self) -> bool:
        return self == Policy()

    def over(self, base: Policy, given: set[str]) -> Policy:
        """``base`` with the fields ``given`` (by name) taken from this one."""
        fields = {f: getattr(self, f) for f in ("canary", "batch", "max_failures", "activation") if f in given}
        return replace(base, **fields)

    def as_dict(self) -> dict[str, Any]:
        return {"canary": list(self.canary), "batch": self.batch, "max_failures": self.max_failures,
                "activation": self.activation}

    def text(self) -> str:
        """``canary c-1, then batches of 2, halt after 1 failure, activation together``."""
        parts = [f"canary {', '.join(self.canary)}"] if self.canary else []
        parts.append(f"batches of {self.batch}" if self.batch else "every node at once")
        parts.append(f"halt after {self.max_failures} failed" if self.max_failures else "never halt")
        parts.append(f"activation {self.activation}")
        return ", ".join(parts)


def parse_canary(raw: Any) -> tuple[str, ...]:
    if raw is None or raw == "":
        return ()
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    names = []
    for item in items:
        if not isinstance(item, str):
            raise Refusal(STEP, f"canary: '{shown(str(item))}' is not a node name")
        if item.strip() and item.strip() not in names:
            names.append(item.strip())
    return tuple(names)


def parse_count(raw: Any, *, field: str) -> int | None:
    """A whole number of at least 1; None for nothing given ("" or None)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise Refusal(STEP, f"{field}: {raw} is not a whole number")
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise Refusal(STEP, f"{field}: '{shown(str(raw))}' is not a whole number") from None
    if value < 1:
        raise Refusal(STEP, f"{field}: {value} is less than 1")
    return value


def parse_activation(raw: Any) -> str:
    if raw is None or raw == "":
        return EACH
    value = str(raw).strip().lower()
    if value not in ACTIVATIONS:
        raise Refusal(STEP, f"activation: '{shown(str(raw))}' is neither 'each' nor 'together'")
    return value


def policy_from_fields(fields: dict[str, Any]) -> tuple[Policy, set[str]]:
    """A policy from a form, the API or the command line (keys ``canary``, ``batch``,
    ``max_failures``, ``activation``), and which of them were given at all."""
    given = {k for k in ("canary", "batch", "max_failures", "activation") if fields.get(k) not in (None, "")}
    policy = Policy(
        canary=parse_canary(fields.get("canary")),
        batch=parse_count(fields.get("batch"), field="batch"),
        max_failures=parse_count(fields.get("max_failures"), field="max-failures"),
        activation=parse_activation(fields.get("activation")),
    )
    return policy, given


def parse_rollout_setting(raw: str | None) -> Policy:
    """``EXTADMIN_ROLLOUT``: ``key=value`` pairs, space separated; keys as the command line's options."""
    fields: dict[str, str] = {}
    for pair in (raw or "").split():
        key, sep, value = pair.partition("=")
        if not sep or key not in KEYS:
            raise Refusal(STEP, f"EXTADMIN_ROLLOUT: '{shown(pair)}' is not one of {', '.join(k + '=' for k in KEYS)}")
        fields[key.replace("-", "_")] = value
    return policy_from_fields(fields)[0]
