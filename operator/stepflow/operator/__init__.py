"""The Kubernetes operator: ``stepflow operator`` or ``kopf run -m stepflow.operator.handlers``.

The package itself registers nothing: ``stepflow operator`` reads its options (some of which
decide what the handlers watch) before it imports :mod:`stepflow.operator.handlers`.
"""
