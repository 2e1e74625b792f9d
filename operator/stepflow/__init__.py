"""stepflow: run Workflow resources as ordered, parallel and DAG steps."""

__version__ = "0.1.0"
