"""kopf's settings as the operator tunes them, and what it watches through kopf."""

from __future__ import annotations

import kopf

from stepflow.operator import handlers
from stepflow.operator.handlers import tune


def test_tuned_kopf_posts_no_events_of_its_own_and_scans_no_crds():
    settings = kopf.OperatorSettings()
    tune(settings)
    assert settings.posting.enabled is False  # one API write per log line otherwise
    assert settings.scanning.disabled is True  # the least-privilege RBAC cannot watch CRDs
    assert isinstance(settings.persistence.diffbase_storage, handlers.NoDiffBase)


def test_kopf_does_not_watch_jobs_or_pods_the_operator_watches_them_itself():
    """Five watch events a step through kopf's machinery cost two thirds of the operator's
    CPU; child_watches.py feeds the same handlers without it."""
    watched = {(h.selector.group, h.selector.any_name) for h in
               kopf.get_default_registry()._watching.get_all_handlers()}
    assert ("stepflow.dev", "workflows") in watched
    assert not {("batch", "jobs"), ("", "pods")} & watched
