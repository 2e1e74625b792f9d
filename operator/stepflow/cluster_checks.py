"""The old name of :mod:`stepflow.cluster_refusals`, kept until reconcile moves (issue 24)."""

from stepflow.cluster_refusals import cluster_errors, image_errors  # noqa: F401  kept until reconcile moves
