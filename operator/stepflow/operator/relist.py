"""What went in a watch gap: cached Workflows and Jobs a re-listing did not show.

kopf lists every kind again after a watch gap (a 410 Gone) and sends no DELETED event for what
went meanwhile. The bookkeeping, and when a listing is over, are the runtime's
(:mod:`stepflow.operator.runtime.cache`); a suspect is forgotten only once a read confirms it
is gone (:meth:`Reconciler.confirm_gone`), and its workflow is reconciled then.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from stepflow.operator.store import Key

if TYPE_CHECKING:
    from stepflow.operator.startup import Operator

log = logging.getLogger(__name__)


def listed(operator: Operator, kind: str, key: Key, name: str = "") -> None:
    """A listed object (kopf's event type None): a Workflow, or a Job ``name`` of one."""
    operator.store.listed(kind, key, name)
    operator.controller.listed(kind)


def listing_over(operator: Operator, kind: str) -> None:
    """The listing of ``kind`` is over: what it did not show is confirmed off the event loop."""
    suspects = operator.store.end_listing(kind)
    if suspects:
        log.info("a re-list of %s did not show %d cached object(s); confirming they are gone",
                 kind, len(suspects))
        operator.controller.executor.submit(confirm_gone, operator, kind, suspects)


def confirm_gone(operator: Operator, kind: str, suspects: set[tuple[Key, str]]) -> None:
    for key, name in suspects:
        try:
            if operator.reconciler.confirm_gone(kind, key, name):
                operator.controller.wake(key)
        except Exception as error:  # one line, not a Future lost unread; a later re-list retries
            log.warning("could not confirm that %s %s/%s is gone: %s", kind, key[0], name or key[1], error)
