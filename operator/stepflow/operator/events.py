"""Old path of the Event queue, now :mod:`stepflow.operator.runtime.events`."""

# old path, kept until reconcile.py moves
from stepflow.operator.runtime.events import EventRecorder as EventRecorder
