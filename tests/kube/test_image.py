"""The built image is the operator (``make image-test``, after ``make image``).

``stepflow operator`` runs from the image itself, not from the virtualenv: ``buildah run`` with
chroot isolation shares the host's network, so the image's operator reaches the real control
plane on loopback, logged in with a token of deploy/'s ServiceAccount (its RBAC judged by the real
authorizer), and a workflow completes. It runs once as the image's own user and once as an
arbitrary UID with group 0, as OpenShift's restricted-v2 SCC runs every container. The image's
contents are checked from a mounted copy: its user and entrypoint, no source tree, no build tools.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import signal
import stat
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kube.realcluster import step, wait_for, workflow
from operator_harness import ROOT, free_port

pytestmark = pytest.mark.image

# An arbitrary UID from an OpenShift namespace's range, with group 0 (restricted-v2).
ARBITRARY_USER = "1000770000:0"


def _image_script():
    spec = importlib.util.spec_from_file_location("stepflow_image_script", ROOT / "scripts" / "image.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


image = _image_script()
BASE = os.environ.get("STEPFLOW_IMAGE_BASE", "standin")
TAG = os.environ.get("STEPFLOW_IMAGE") or image.default_tag()


@pytest.fixture(scope="module")
def buildah() -> list[str]:
    """buildah on scripts/image.py's storage, which must hold the built image."""
    argv = image.buildah(BASE)
    if subprocess.run([*argv, "inspect", "--type", "image", TAG], capture_output=True).returncode:
        pytest.fail(f"no image {TAG} in {image.storage(BASE)}: run make image first", pytrace=False)
    return argv


@pytest.fixture(scope="module")
def config(buildah: list[str]) -> dict:
    out = subprocess.run([*buildah, "inspect", "--type", "image", TAG], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)["OCIv1"]["config"]


@pytest.fixture(scope="module")
def rootfs(buildah: list[str]) -> Iterator[Path]:
    """The image's file system, mounted read-only in effect (nothing here writes to it)."""
    container = subprocess.run([*buildah, "from", "--pull=never", TAG], capture_output=True, text=True,
                               check=True).stdout.strip()
    try:
        mount = subprocess.run([*buildah, "mount", container], capture_output=True, text=True,
                               check=True).stdout.strip()
        yield Path(mount)
    finally:
        subprocess.run([*buildah, "rm", container], capture_output=True)


def test_the_image_runs_as_a_numeric_non_root_user_with_the_operator_as_entrypoint(config):
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["stepflow", "operator"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in config["Cmd"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].startswith("/opt/stepflow/bin:")
    # What this machine's build needed (its CA bundle, for pip) stays out of the image.
    assert "PIP_CERT" not in env and not any("PIP_CERT" in value for value in env.values())
    # An image built on the stand-in base says so (its label is inherited), one on the real base not.
    assert (image.STANDIN_LABEL in (config.get("Labels") or {})) == (BASE == "standin")


def test_the_image_holds_the_installed_package_and_not_the_source_or_the_build_tools(rootfs):
    assert not (rootfs / "src").exists(), "the builder stage's source tree"
    assert not (rootfs / "wheels").exists(), "the builder stage's wheel"
    (site,) = (rootfs / "opt" / "stepflow" / "lib").glob("python3.*/site-packages")
    installed = {path.name.split("-")[0].lower() for path in site.glob("*.dist-info")}
    assert {"stepflow_operator", "kopf", "kubernetes"} <= installed
    build_or_test = {"pip", "setuptools", "wheel", "pytest", "hypothesis", "ruff", "playwright", "mkdocs"}
    assert not installed & build_or_test, sorted(installed & build_or_test)
    for tool in ("gcc", "cc", "c++", "make", "git"):
        assert not (rootfs / "usr" / "bin" / tool).exists(), tool
    assert not list((rootfs / "opt" / "stepflow").rglob("*.egg-info"))


def test_everything_the_operator_reads_is_readable_by_an_arbitrary_uid_in_group_0(rootfs):
    """restricted-v2 runs the container as a UID that owns no file, with group 0: each file of
    the operator must be readable (and each folder searchable) by group 0 or by anyone."""
    unreadable = []
    for path in [rootfs / "opt" / "stepflow", *(rootfs / "opt" / "stepflow").rglob("*")]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue
        folder = stat.S_ISDIR(info.st_mode)
        group = stat.S_IRGRP | (stat.S_IXGRP if folder else 0)
        anyone = stat.S_IROTH | (stat.S_IXOTH if folder else 0)
        if not ((info.st_gid == 0 and info.st_mode & group == group) or info.st_mode & anyone == anyone):
            unreadable.append(f"{path.relative_to(rootfs)} {stat.filemode(info.st_mode)} gid {info.st_gid}")
    assert not unreadable, unreadable[:10]


def _image_kubeconfig(control_plane, operator_kubeconfig: Path, path: Path) -> Path:
    """The ServiceAccount's kubeconfig with its CA inlined: one file to mount into the container,
    readable by whatever UID the container runs as (a token for a test's throwaway cluster)."""
    doc = yaml.safe_load(operator_kubeconfig.read_text())
    cluster = doc["clusters"][0]["cluster"]
    ca = Path(cluster.pop("certificate-authority")).read_bytes()
    cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o644)
    return path


def _process_uid_gid(marker: str) -> tuple[int, int] | None:
    """The real UID and GID of the host process whose command line holds ``marker``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if marker in cmdline and "buildah" not in cmdline:
                fields = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines())
                return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])
        except (OSError, ValueError):
            continue
    return None


@pytest.mark.parametrize("user", ["image", ARBITRARY_USER])
def test_the_image_is_the_operator_a_workflow_completes(
    buildah, config, control_plane, operator_kubeconfig, kube, tmp_path, user
):
    kubeconfig = _image_kubeconfig(control_plane, operator_kubeconfig, tmp_path / "kubeconfig")
    port = free_port()
    liveness = f"http://127.0.0.1:{port}/healthz"
    container = subprocess.run([*buildah, "from", "--pull=never", TAG], capture_output=True, text=True,
                               check=True).stdout.strip()
    command = [*buildah, "run", "--isolation", "chroot",
               "--volume", f"{kubeconfig}:/etc/stepflow/kubeconfig:ro",
               "--env", "KUBECONFIG=/etc/stepflow/kubeconfig", "--env", "STEPFLOW_METRICS_PORT=0",
               *(["--user", user] if user != "image" else []),
               container, "--", *config["Entrypoint"],
               "--standalone", f"--namespace={kube.namespace}", f"--liveness={liveness}"]
    log_path = tmp_path / "operator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def healthy() -> bool:
            assert process.poll() is None, "the image's operator exited:\n" + log_path.read_text()[-3000:]
            try:
                return urllib.request.urlopen(liveness, timeout=2).status == 200
            except OSError:
                return False

        wait_for(healthy, timeout=60, message="the image's operator never answered its liveness probe")
        expected = (65532, 65532) if user == "image" else tuple(map(int, user.split(":")))
        assert _process_uid_gid(f"--liveness={liveness}") == expected

        kube.create(workflow("from-image", [step("fetch"), step("build"), step("test", parallel=True),
                                            step("lint", parallel=True)]))
        status = kube.wait_phase("from-image", timeout=90)
        assert status["phase"] == "Succeeded", status
        assert {name: entry["phase"] for name, entry in status["steps"].items()} == dict.fromkeys(
            ("fetch", "build", "test", "lint"), "Succeeded")
        jobs = kube.jobs("from-image")
        assert len(jobs) == 4
        assert all(job["metadata"]["ownerReferences"][0]["kind"] == "Workflow" for job in jobs)
        # The API server heard it from deploy/'s ServiceAccount, i.e. the mounted kubeconfig.
        requests = kube.requests_by("system:serviceaccount:stepflow-system:stepflow-operator")
        assert requests["create jobs"] == 4, requests
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        subprocess.run([*buildah, "rm", container], capture_output=True)
    text = log_path.read_text(errors="replace")
    assert "Traceback (most recent call last)" not in text, text[-3000:]
    assert "forbidden" not in text.lower(), text[-3000:]
    deadline = time.monotonic() + 10
    while _process_uid_gid(f"--liveness={liveness}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _process_uid_gid(f"--liveness={liveness}") is None, "the image's operator outlived its test"
