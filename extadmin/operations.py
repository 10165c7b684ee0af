"""The operation log: every import and removal, each numbered step's outcome and duration.

Steps are collected in memory and written when the operation ends, outside the import's own
transaction, so that a rolled-back import still leaves the record of which step failed and why.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from extadmin.logs import log_context_add
from extadmin.models import ExtensionPackage, Operation, OperationStep
from extadmin.packaging import Refusal
from extadmin.processes import process_alive


@dataclass
class Actor:
    """Who asked for an operation, and through which door."""

    user: Any = None
    remote_addr: str | None = None
    via: str = "cli"

    @property
    def username(self) -> str:
        return getattr(self.user, "username", "") or ""


@dataclass
class _Step:
    number: int
    name: str
    started_at: datetime
    duration_ms: float
    outcome: str
    error: str = ""


@dataclass
class OperationRecorder:
    operation: Operation
    steps: list[_Step] = field(default_factory=list)

    @classmethod
    def start(cls, *, kind: str, package_name: str, actor: Actor, node: str, **fields: Any) -> OperationRecorder:
        op = Operation.objects.create(
            kind=kind,
            package_name=package_name,
            node=node,
            user=actor.user if getattr(actor.user, "pk", None) else None,
            username=actor.username,
            remote_addr=actor.remote_addr,
            via=actor.via,
            pid=os.getpid(),
            started_at=timezone.now(),
            **fields,
        )
        # The lines of this import or removal: its node too, when the caller left it to the setting.
        log_context_add(node=node, package=package_name, operation_id=op.pk)
        return cls(operation=op)

    @contextmanager
    def step(self, number: int, name: str) -> Iterator[None]:
        started, t0 = timezone.now(), time.perf_counter()
        try:
            yield
        except BaseException as exc:
            self.steps.append(
                _Step(number, name, started, _ms(t0), OperationStep.Outcome.FAILED, describe_error(exc))
            )
            raise
        self.steps.append(_Step(number, name, started, _ms(t0), OperationStep.Outcome.SUCCEEDED))

    def finish(self, *, error_step: str = "", error: str = "", backed_out: bool = False) -> Operation:
        op = self.operation
        op.finished_at = timezone.now()
        op.outcome = Operation.Outcome.FAILED if error else Operation.Outcome.SUCCEEDED
        op.error_step, op.error = error_step, error
        with transaction.atomic():
            for s in self.steps:
                outcome = s.outcome
                if backed_out and outcome == OperationStep.Outcome.SUCCEEDED:
                    outcome = OperationStep.Outcome.BACKED_OUT
                OperationStep.objects.create(
                    operation=op, number=s.number, name=s.name, outcome=outcome,
                    started_at=s.started_at, duration_ms=s.duration_ms, error=s.error,
                )
            op.save()
        return op


    def fail(self, exc: BaseException, *, backed_out: bool = False) -> BaseException:
        """Record that the operation failed; returns what to raise: a ``Refusal`` naming the step.

        A refusal keeps its own step and words; any other error (disk full, a lost database
        connection, a bug) is named after the step it happened in. Interrupts (KeyboardInterrupt,
        SystemExit) are recorded and returned unchanged.
        """
        if isinstance(exc, Refusal):
            step, reason = exc.step, exc.reason
        else:
            step = self.steps[-1].name if self.steps else self.operation.kind
            reason = describe_error(exc)
        self.finish(error_step=step, error=reason, backed_out=backed_out)
        if isinstance(exc, Refusal) or not isinstance(exc, Exception):
            return exc
        refusal = Refusal(step, reason)
        refusal.__cause__ = exc
        return refusal


def describe_error(exc: BaseException) -> str:
    """An error in words an operator can act on (never a bare class name)."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = str(exc).strip()
    return text or exc.__class__.__name__


def operations_mark_interrupted(*, node: str) -> int:
    """Operations of this node's processes that died mid-way are marked interrupted, not left running.

    What the record says matches what the database kept: a process can die after its transaction
    committed (the import is in) or after a removal's first step (the package is left "removing").
    """
    stale = Operation.objects.filter(node=node, outcome=Operation.Outcome.RUNNING).exclude(pid=os.getpid())
    dead = [op for op in stale if not _alive(op.pid)]
    for op in dead:
        Operation.objects.filter(pk=op.pk, outcome=Operation.Outcome.RUNNING).update(
            outcome=Operation.Outcome.INTERRUPTED, finished_at=timezone.now(), error=_interrupted_because(op),
        )
    return len(dead)


def _interrupted_because(op: Operation) -> str:
    stopped = "the process running this operation stopped before it finished"
    package = ExtensionPackage.objects.filter(name=op.package_name).first()
    if op.kind == Operation.Kind.REMOVE:
        if package is None:
            return f"{stopped}, after the package was removed from the database; the removal was kept"
        return f"{stopped}; {op.package_name} is left marked {package.state}: remove it again to finish"
    committed = (
        package is not None and package.version == op.version and package.imported_on_node == op.node
        and package.imported_at >= op.started_at
    )
    if committed:
        return f"{stopped}, after the import was committed; {op.package_name} {op.version} was kept"
    return f"{stopped}; nothing of it was kept"


def _alive(pid: int | None) -> bool:
    return bool(pid) and process_alive(pid)  # type: ignore[arg-type]


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)
