"""The API client: the official client's REST layer, with retries and the leader's write fence.

Transient failures (429, 5xx, timeouts, dropped connections) are retried here
with a short backoff that honours Retry-After; whatever still fails is raised
so the work queue retries the whole reconcile later. Responses are read as
raw JSON: the operator works with plain dicts, and skipping the client's model
deserialisation is the cheapest win on the hot path.
"""

from __future__ import annotations

import codecs
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from stepflow.operator.runtime import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRIABLE = frozenset({429, 500, 502, 503, 504})
ATTEMPTS = 5
REQUEST_TIMEOUT = (5, 30)  # connect, read


class Conflict(Exception):
    """409: the object exists already (create) or changed under us (update)."""


class NotFound(Exception):
    """404."""


class Invalid(Exception):
    """422 or 400: the API server refuses the object; retrying cannot help."""


class Forbidden(Exception):
    """403: RBAC refuses the call, or admission does (a namespace being deleted, a quota)."""


class NotLeader(Exception):
    """A write refused before it was sent: this replica does not hold the leader Lease (L3)."""


# What a reconcile may fail with when the API server is unwell: retried later, logged as one line.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ApiException, urllib3.exceptions.HTTPError, OSError, NotLeader)


def load_config() -> client.ApiClient:
    """In-cluster credentials when running in a pod, else the current kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def _retry_after(exc: ApiException, attempt: int) -> float:
    header = (exc.headers or {}).get("Retry-After") if exc.headers else None
    try:
        return min(float(header), 10.0) if header else min(0.05 * 2**attempt, 2.0)
    except ValueError:
        return min(0.05 * 2**attempt, 2.0)


def call(fn: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run one API call, retrying transient failures, translating the final ones."""
    for attempt in range(attempts):
        try:
            return fn()
        except ApiException as exc:
            metrics.API_ERRORS.labels(code=str(exc.status)).inc()
            if exc.status == 409:
                raise Conflict(_reason(exc)) from None
            if exc.status == 404:
                raise NotFound(_reason(exc)) from None
            if exc.status in (400, 422):
                raise Invalid(_reason(exc)) from None
            if exc.status == 403:
                raise Forbidden(_reason(exc)) from None
            if exc.status not in RETRIABLE or attempt == attempts - 1:
                raise
            delay = _retry_after(exc, attempt)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            metrics.API_ERRORS.labels(code="network").inc()
            if attempt == attempts - 1:
                raise
            delay = min(0.05 * 2**attempt, 2.0)
            log.debug("API call failed (%s), retrying in %.2fs", exc, delay)
        time.sleep(delay)
    raise AssertionError("unreachable")


def _reason(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message") or str(exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)


class Client:
    """Requests as plain dicts, on the official client's configuration, authentication and
    REST layer, but not its generated model classes: those validate every body into pydantic
    models, which costs more than a whole reconcile. A controller's own vocabulary of calls
    (stepflow's: :class:`stepflow.operator.api.Api`) is a subclass.
    """

    def __init__(self, api_client: client.ApiClient, may_write: Callable[[], bool] | None = None):
        self.client = api_client
        # The leader election fence: checked before every write, None when there is no election.
        self.may_write = may_write

    def _open(self, method: str, path: str, query: Mapping[str, Any] | None, body: Any,
              content_type: str, timeout: Any) -> Any:
        serialized = self.client.param_serialize(
            method, path, query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": "application/json, */*"},
            body=body, auth_settings=["BearerToken"])
        response = self.client.call_api(*serialized, _request_timeout=timeout)
        if not 200 <= response.status <= 299:
            response.read()
            raise ApiException.from_response(http_resp=response, body=response.data.decode(
                "utf-8", "replace"), data=None)
        return response

    def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
                body: Any = None, content_type: str = "application/json") -> dict[str, Any]:
        fenced = method != "GET" and self.may_write is not None

        def send() -> dict[str, Any]:
            # Checked before every attempt: a retry must not outlive the leadership.
            if fenced and not self.may_write():
                raise NotLeader(f"{method} {path} refused: this replica does not hold the leader lease")
            response = self._open(method, path, query, body, content_type, REQUEST_TIMEOUT)
            response.read()
            return json.loads(response.data) if response.data else {}

        return call(send)

    def request_once(self, method: str, path: str, *, body: Any = None,
                     timeout: tuple[float, float] = REQUEST_TIMEOUT) -> dict[str, Any]:
        """One attempt with its own timeout, for the Lease: its loop retries on its own clock."""
        def send() -> dict[str, Any]:
            response = self._open(method, path, None, body, "application/json", timeout)
            response.read()
            return json.loads(response.data) if response.data else {}

        return call(send, attempts=1)

    def stream(self, path: str, *, query: Mapping[str, Any] | None = None,
               timeout: tuple[float, float] | None = None) -> Iterator[str]:
        """A GET whose body is read as it arrives (pod logs with follow, a watch). A character
        cut between two chunks is decoded whole (a step's output in a pod's termination message
        may be any UTF-8)."""
        response = call(lambda: self._open("GET", path, query, None, "application/json", timeout))
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        for chunk in response.response.stream(4096, decode_content=True):
            yield decoder.decode(chunk)
        yield decoder.decode(b"", final=True)

    def post_event(self, event: Mapping[str, Any]) -> None:
        """A core/v1 Event (the Event queue's ``post``)."""
        self.request("POST", f"/api/v1/namespaces/{event['metadata']['namespace']}/events", body=event)
