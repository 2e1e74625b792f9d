"""``stepflow ui``: a read-only web UI that follows Workflows through the API's watch.

``model`` turns Workflow objects into the JSON the pages draw (pure, no I/O), ``watch`` keeps
a live copy of them from a list-then-watch loop, and ``server`` serves both with aiohttp.
"""
