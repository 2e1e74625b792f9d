"""Retry and error translation of the operator's API calls, without a server."""

from __future__ import annotations

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from stepflow.operator.runtime import api


class Flaky:
    """Fails with the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: Exception):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def api_error(status: int, retry_after: str | None = None) -> ApiException:
    error = ApiException(status=status, reason="injected")
    error.headers = {"Retry-After": retry_after} if retry_after else {}
    error.body = '{"message": "injected by the test"}'
    return error


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(api.time, "sleep", slept.append)
    return slept


def test_throttling_server_errors_and_network_failures_are_retried(no_sleeping):
    flaky = Flaky(api_error(429, retry_after="0.5"), api_error(503), api_error(500),
                  urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"))
    assert api.call(flaky) == "ok"
    assert flaky.calls == 5
    assert no_sleeping[0] == 0.5  # Retry-After is honoured


def test_retries_are_bounded_and_the_last_error_surfaces(no_sleeping):
    flaky = Flaky(*[api_error(503) for _ in range(api.ATTEMPTS)])
    with pytest.raises(ApiException):
        api.call(flaky)
    assert flaky.calls == api.ATTEMPTS


@pytest.mark.parametrize(("status", "translated"), [
    (409, api.Conflict), (404, api.NotFound), (422, api.Invalid), (400, api.Invalid)])
def test_final_answers_are_translated_and_never_retried(status, translated):
    flaky = Flaky(api_error(status))
    with pytest.raises(translated, match="injected by the test"):
        api.call(flaky)
    assert flaky.calls == 1


def test_a_streamed_character_cut_between_two_chunks_arrives_whole():
    """A step's output in a watched pod's termination message may be any UTF-8."""
    from types import SimpleNamespace

    from stepflow.operator.runtime.api import Client

    body = '{"message": "größe ✓"}\n'.encode()
    cut = body.index("ö".encode()) + 1  # after the first of its two bytes
    chunks = [body[:cut], body[cut:cut + 1], body[cut + 1:]]

    class Opened(Client):
        def _open(self, *args: object) -> object:
            return SimpleNamespace(response=SimpleNamespace(stream=lambda *a, **k: iter(chunks)))

    assert "".join(Opened(None).stream("/x")) == body.decode()
