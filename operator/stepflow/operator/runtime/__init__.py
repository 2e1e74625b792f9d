"""The controller runtime: what any controller needs, and nothing of workflows.

Its parts: the API client with retries and the leader's write fence (``api``), the rules of
an informer cache and when a listing is over (``cache``), the work queue (``workqueue``),
leader election on a Lease (``leader``), the Event queue (``events``), its own metrics
(``metrics``), and the :class:`~stepflow.operator.runtime.controller.Controller` that wires
them together, starts and stops them and hands leadership over (``controller``).

"Knows nothing of workflows" means, concretely:

* no module here imports anything of stepflow outside this package (not the spec, plan,
  engine, status, Jobs, cache or reconcile), nor kopf (tests/operator/runtime/test_boundary.py);
* everything that is a Workflow's business comes in as an argument: the reconcile (a callable
  from a key to "again in N seconds"), the keys to reconcile on taking over the Lease, what a
  finished listing means for the cache, the API calls beyond the generic ones (a subclass of
  ``Client``), and who Events are about and how gathered ones read (an ``EventSource``);
* what is watched is declared by kopf's decorators and settings (stepflow.operator.handlers);
  the runtime hears only of each listed object's kind (``Controller.listed``), and what is
  cached, and how, is the caller's (stepflow.operator.store keeps the rules of ``cache``).

Names that are the product's, not a workflow's, stay: the metrics' ``stepflow_`` prefix.
"""
