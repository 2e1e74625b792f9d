"""The Kubernetes operator: ``stepflow operator`` or ``kopf run -m stepflow.operator``.

Importing the package registers the kopf handlers.
"""

from stepflow.operator import handlers as handlers
