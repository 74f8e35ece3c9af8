"""The ``CustomerShard`` actor: one shard of customers, by hash of their id.

Owns a ``CustomerBook`` (contact history, grade, repeat-call counters) for
the customers whose id hashes to its index; ``shard_index`` gives the
mapping. What survives a restart: the book and the rules, from a snapshot
file beside the store that a loop rewrites (atomically, then fsync) at most
every ``SNAPSHOT_INTERVAL_S`` seconds after a change, and on ``close``.
Contact events of the last interval before a crash can be lost; they
only feed grades and repeat-call counters, never a promise.

Idempotency: ``record`` of the same contact event twice counts an arrival
twice, because the CTI feed has no event id to deduplicate on. The setters
and queries are idempotent.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict

import ray

# Registers the pickling of engine errors sent back through Ray.
import callsure.actors.errors  # noqa: F401
from callsure.actors.snapshot import SnapshotFile
from callsure.engine.customers import (
    ContactEvent,
    CustomerBook,
    CustomerStatus,
    GradeRules,
    RepeatCallerRule,
    grade_rules_from_plain,
    repeat_rule_from_plain,
)
from callsure.engine.exceptions import ValidationError

logger = logging.getLogger(__name__)

SNAPSHOT_INTERVAL_S = 1.0


def shard_index(customer_id: str, shard_count: int) -> int:
    """Shard of ``customer_id``: a stable hash (not Python's salted ``hash``)."""
    digest = hashlib.blake2b(customer_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shard_count


def _rules_to_plain(rules: GradeRules) -> dict:
    plain = asdict(rules)
    plain["vip_ids"] = sorted(rules.vip_ids)
    plain["complaint_ids"] = sorted(rules.complaint_ids)
    return plain


@ray.remote(max_restarts=-1, max_task_retries=0)
class CustomerShard:
    """A Ray actor hosting one ``CustomerBook``; see the module docstring."""

    def __init__(self, index: int, snapshot_path: str):
        self._index = index
        self._snapshot = SnapshotFile(snapshot_path, self._state, SNAPSHOT_INTERVAL_S)
        state = self._snapshot.load()
        if state is None:
            self._book = CustomerBook()
            logger.info("customer shard %d: starting empty", index)
        else:
            self._book = CustomerBook.from_state(
                state["customers"],
                grade_rules_from_plain(state["rules"]),
                repeat_rule_from_plain(state["repeat_rule"]),
            )
            logger.info(
                "customer shard %d: reloaded %d customers", index, len(self._book)
            )

    def _state(self) -> dict:
        return {
            "customers": self._book.to_state(),
            "rules": _rules_to_plain(self._book.rules),
            "repeat_rule": asdict(self._book.repeat_rule),
        }

    def _changed(self) -> None:
        self._snapshot.changed()

    # Messages

    async def record_many(self, events: list[ContactEvent]) -> list[int]:
        """Record contact events in order; return each customer's priority
        after its event."""
        priorities = [self._book.record(event).priority for event in events]
        if events:
            self._changed()
        return priorities

    async def status(self, customer_id: str, now) -> CustomerStatus:
        return self._book.status(customer_id, now)

    async def prepare_callbacks(self, hints: list, now) -> list:
        """Apply the grade hints of new callbacks; return each customer's grading.

        ``hints`` contains ``(customer_id, grade, open_complaint)`` tuples. A
        grade is stored as the CRM attribute ``grade``, which decides the
        grade when the grade rules match that attribute; an open complaint
        is recorded as a complaint at ``now``. The result holds, per hint,
        a ``(grade, priority, dedicated_agent_id)`` tuple from the
        customer's ``CustomerStatus``, or the ``ValidationError`` raised
        for it. Plain tuples, because Ray pickles the reply of every batch
        of CreateCallback: pickling and unpickling a ``CustomerStatus``
        took about 18 µs against 1 µs for the tuple (40 customers, on the
        shared 2-core machine).
        """
        results = []
        changed = False
        for customer_id, grade, open_complaint in hints:
            try:
                if grade:
                    self._book.set_attributes(customer_id, {"grade": grade})
                    changed = True
                if open_complaint:
                    self._book.record_complaint(customer_id, now)
                    changed = True
                status = self._book.status(customer_id, now)
            except ValidationError as exc:
                results.append(exc)
                continue
            results.append(
                (status.grade.value, status.priority, status.dedicated_agent_id)
            )
        if changed:
            self._changed()
        return results

    async def set_attributes(
        self, customer_id: str, attributes: dict, dedicated_agent_id=None
    ) -> None:
        self._book.set_attributes(
            customer_id, attributes, dedicated_agent_id=dedicated_agent_id
        )
        self._changed()

    async def record_complaint(self, customer_id: str, when) -> None:
        self._book.record_complaint(customer_id, when)
        self._changed()

    async def set_rules(self, rules: GradeRules) -> None:
        self._book.set_rules(rules)
        self._changed()

    async def set_repeat_rule(self, rule: RepeatCallerRule) -> None:
        self._book.set_repeat_rule(rule)
        self._changed()

    async def customer_count(self) -> int:
        return len(self._book)

    async def close(self) -> None:
        """Write the snapshot now; called before a clean stop."""
        await self._snapshot.save_now()
