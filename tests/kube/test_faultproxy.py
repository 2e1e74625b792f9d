"""The fault proxy itself, in front of the session's real API server (mirror: faultproxy.py):
what it passes on is what the API server answered, to whoever asked; what it injects is what
it was told, as often as it was told."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube.faultproxy import FaultProxy, describe
from kube.fixtures import OPERATOR_USER


def call(proxy: FaultProxy, credentials: Path, path: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """GET ``path`` through the proxy with the token in ``credentials``: status, headers, body."""
    token = yaml.safe_load(credentials.read_text())["users"][0]["user"]["token"]
    request = urllib.request.Request(proxy.url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.load(error)


@pytest.mark.parametrize(("method", "path", "query", "named"), [
    ("GET", "/api/v1/namespaces/ns/pods", {"watch": "true"}, ("watch", "pods", "ns", None)),
    ("PATCH", "/apis/stepflow.dev/v1alpha1/namespaces/ns/workflows/w/status", {},
     ("patch", "workflows/status", "ns", "w")),
    ("POST", "/apis/batch/v1/namespaces/ns/jobs", {}, ("create", "jobs", "ns", None)),
    ("GET", "/api/v1/namespaces/ns", {}, ("get", "namespaces", None, "ns")),
    ("DELETE", "/api/v1/namespaces/ns/pods", {}, ("deletecollection", "pods", "ns", None)),
    ("GET", "/apis/stepflow.dev/v1alpha1", {}, ("get", "/apis/stepflow.dev/v1alpha1", None, None)),
])
def test_requests_are_named_as_rbac_and_the_audit_log_name_them(method, path, query, named):
    assert describe(method, path, query) == named


def test_answers_pass_through_unchanged_with_the_callers_identity(kube, fault_proxy, operator_kubeconfig):
    status, _, listing = call(fault_proxy, operator_kubeconfig, kube.path("workflows"))
    assert status == 200 and listing["kind"] == "WorkflowList", listing
    # deploy/'s ClusterRole has no Secrets: the real authorizer refuses the operator's account.
    secrets = f"/api/v1/namespaces/{kube.namespace}/secrets"
    status, _, refused = call(fault_proxy, operator_kubeconfig, secrets)
    assert status == 403 and refused["reason"] == "Forbidden" and OPERATOR_USER in refused["message"]
    assert [(c.what, c.status, c.fault) for c in fault_proxy.calls] == [
        ("list workflows", 200, False), ("list secrets", 403, False)]


def test_a_fault_is_answered_as_often_as_told_then_requests_pass(kube, fault_proxy, operator_kubeconfig):
    fault_proxy.fail(429, "list workflows", times=2, retry_after=1)
    answers = [call(fault_proxy, operator_kubeconfig, kube.path("workflows")) for _ in range(3)]
    assert [status for status, _, _ in answers] == [429, 429, 200]
    _, headers, body = answers[0]
    assert headers["Retry-After"] == "1"
    assert (body["kind"], body["reason"], body["code"]) == ("Status", "TooManyRequests", 429)
    assert fault_proxy.count("list workflows", fault=True) == 2
    assert fault_proxy.count("list workflows", status=200) == 1


def test_a_delay_holds_a_request_before_passing_it_on(kube, fault_proxy, operator_kubeconfig):
    fault_proxy.delay(0.5, "list workflows", times=1)
    started = time.monotonic()
    assert call(fault_proxy, operator_kubeconfig, kube.path("workflows"))[0] == 200
    held = time.monotonic() - started
    started = time.monotonic()
    call(fault_proxy, operator_kubeconfig, kube.path("workflows"))
    assert held >= 0.5 > time.monotonic() - started  # once only


@pytest.mark.parametrize("abrupt", [False, True])
def test_a_cut_watch_ends_its_stream_cleanly_or_abruptly(kube, fault_proxy, operator_kubeconfig, abrupt):
    token = yaml.safe_load(operator_kubeconfig.read_text())["users"][0]["user"]["token"]
    connection = http.client.HTTPConnection("127.0.0.1", int(fault_proxy.url.rsplit(":", 1)[1]), timeout=10)
    connection.request("GET", kube.path("workflows") + "?watch=true&timeoutSeconds=60",
                       headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    assert response.status == 200
    kube.create({"apiVersion": "stepflow.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
                 "spec": {"suspend": True, "defaults": {"image": "alpine:3.20"},
                          "steps": [{"name": "a", "script": "true"}]}})
    assert json.loads(response.readline())["type"] == "ADDED"  # the stream is live, unbuffered
    assert fault_proxy.cut_watches("watch pods") == 0
    assert fault_proxy.cut_watches("watch workflows", abrupt=abrupt) == 1
    if abrupt:
        with pytest.raises(http.client.IncompleteRead):
            response.read()
    else:
        assert response.read() == b""  # ended as an API server ends a watch at its timeout
