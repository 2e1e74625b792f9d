"""The schemas of the Kubernetes settings a step hands to its Job's pod: environment variables,
resources, security contexts, tolerations, node selector and pod metadata.

They are subsets of Kubernetes' own types (EnvVar, ResourceRequirements, SecurityContext,
PodSecurityContext, Toleration), with every list and string bounded so that the CRD's CEL rules
stay within the API server's cost budget. The API server checks their contents again when it
admits the Job. :mod:`stepflow.fields` declares where they appear.
"""

from __future__ import annotations

from stepflow.openapi import Schema, array, boolean, integer, obj, quantity, rule, string


def _key_ref(kind: str) -> Schema:
    return obj(f"Selects a key of a {kind} in the Workflow's namespace.", {
        "name": string(f"Name of the {kind}.", max_length=253),
        "key": string("The key to select.", max_length=253),
        "optional": boolean(f"Whether the {kind} or its key may be missing."),
    }, required=["key"])


def env_var(*, step_output: Schema | None) -> Schema:
    """Kubernetes' EnvVar, with one more source where ``step_output`` is given (O3)."""
    sources = {
        "configMapKeyRef": _key_ref("ConfigMap"),
        "secretKeyRef": _key_ref("Secret"),
        "fieldRef": obj("Selects a field of the pod, e.g. metadata.name.", {
            "apiVersion": string("Version of the schema fieldPath is written in (default v1).",
                                 max_length=64),
            "fieldPath": string("Path of the field to select.", max_length=256),
        }, required=["fieldPath"]),
        "resourceFieldRef": obj("Selects a resource of the container, e.g. limits.memory.", {
            "containerName": string("Container name; the step's only container if unset.", max_length=63),
            "resource": string("Resource to select, e.g. limits.cpu.", max_length=64),
            "divisor": quantity("Output format of the exposed resources (a quantity, default 1)."),
        }, required=["resource"]),
    }
    if step_output is not None:
        sources["stepOutput"] = step_output
    return obj("An environment variable (Kubernetes EnvVar).", {
        "name": string("Name of the environment variable.", min_length=1, max_length=256),
        "value": string("Value of the variable; $(VAR) references are expanded.", max_length=32768),
        "valueFrom": obj("Source for the value; cannot be used if value is set.", sources),
    }, required=["name"])


def env(description: str, *, step_output: Schema | None = None) -> Schema:
    return array(description, env_var(step_output=step_output), max_items=128, list_type="map",
                 map_keys=["name"])


def resources(description: str, *, where: str) -> Schema:
    """Kubernetes' ResourceRequirements. ``claims`` is declared, then refused by a rule, so that
    the refusal says why instead of calling the field unknown."""
    return obj(description, {
        "limits": obj("Maximum amount of compute resources allowed, e.g. cpu, memory.", max_properties=16,
                      values=quantity("A resource quantity, e.g. 500m or 1Gi.")),
        "requests": obj("Minimum amount of compute resources required, e.g. cpu, memory.",
                        max_properties=16, values=quantity("A resource quantity, e.g. 250m or 256Mi.")),
        "claims": array("Dynamically allocated resources (resource claims) the container uses.",
                        obj("A reference to a pod resource claim.", {
                            "name": string("Name of a pod resource claim.", max_length=63),
                            "request": string("Name of a request within that claim.", max_length=63),
                        }, required=["name"]),
                        max_items=16, list_type="map", map_keys=["name"]),
    }, rules=[rule("!has(self.claims)", f"{where}.claims is not supported yet (a step's pod cannot "
                                        "declare resourceClaims)")])


def _profile(kind: str) -> Schema:
    return obj(f"The {kind} profile.", {
        "type": string("RuntimeDefault, Localhost or Unconfined.", max_length=32,
                       enum=["RuntimeDefault", "Localhost", "Unconfined"]),
        "localhostProfile": string("The profile's path on the node, with type Localhost.", max_length=4096),
    }, required=["type"])


SE_LINUX_OPTIONS = obj("SELinux labels of the container.", {
    part: string(f"The SELinux {part} label.", max_length=253) for part in ("level", "role", "type", "user")})


def _ids(who: str, non_root: str) -> dict[str, Schema]:
    """runAsGroup, runAsNonRoot and runAsUser, of a container or of the whole pod."""
    return {
        "runAsGroup": integer(f"GID of {who}.", bits=64, minimum=0),
        "runAsNonRoot": boolean(non_root),
        "runAsUser": integer(f"UID of {who}.", bits=64, minimum=0),
    }


SECURITY_CONTEXT = obj(
    "The step container's securityContext (Kubernetes SecurityContext). A step's replaces "
    "spec.defaults.securityContext as a whole. Ignored by `stepflow run`.", {
        "allowPrivilegeEscalation": boolean("Whether a process may gain more privileges than its parent."),
        "appArmorProfile": _profile("AppArmor"),
        "capabilities": obj("Capabilities to add to or drop from the defaults.", {
            verb: array(f"Capabilities to {verb}, e.g. ALL.", string("A capability name.", max_length=64),
                        max_items=64) for verb in ("add", "drop")}),
        "privileged": boolean("Run the container privileged."),
        "procMount": string("Default or Unmasked.", max_length=16, enum=["Default", "Unmasked"]),
        "readOnlyRootFilesystem": boolean("Mount the container's root filesystem read-only."),
        **_ids("the container's process", "Refuse to start the container as UID 0."),
        "seLinuxOptions": SE_LINUX_OPTIONS,
        "seccompProfile": _profile("seccomp"),
    })

POD_SECURITY_CONTEXT = obj(
    "The step pod's securityContext (Kubernetes PodSecurityContext). A step's replaces "
    "spec.defaults.podSecurityContext as a whole. Ignored by `stepflow run`.", {
        "appArmorProfile": _profile("AppArmor"),
        "fsGroup": integer("GID that owns the pod's volumes.", bits=64, minimum=0),
        "fsGroupChangePolicy": string("OnRootMismatch or Always.", max_length=16,
                                      enum=["OnRootMismatch", "Always"]),
        **_ids("the pod's processes", "Refuse to start containers as UID 0."),
        "seLinuxOptions": SE_LINUX_OPTIONS,
        "seccompProfile": _profile("seccomp"),
        "supplementalGroups": array("Further GIDs of the pod's processes.",
                                    integer("A GID.", bits=64, minimum=0), max_items=32),
        "supplementalGroupsPolicy": string("Merge or Strict.", max_length=16, enum=["Merge", "Strict"]),
        "sysctls": array("Namespaced sysctls of the pod.", obj("One sysctl.", {
            "name": string("The sysctl's name.", max_length=253),
            "value": string("Its value.", max_length=1024),
        }, required=["name", "value"]), max_items=32),
    })

TOLERATIONS = array(
    "Tolerations of the step's pod (Kubernetes Toleration), for tainted nodes. A step's list replaces "
    "spec.defaults.tolerations. Ignored by `stepflow run`.", obj("One toleration.", {
        "key": string("The taint key it matches; empty with operator Exists matches every taint.",
                      max_length=317),
        "operator": string("Exists or Equal (the default).", max_length=16, enum=["Exists", "Equal"]),
        "value": string("The taint value it matches, with operator Equal.", max_length=63),
        "effect": string("The taint effect it matches; empty matches all.", max_length=16,
                         enum=["", "NoSchedule", "PreferNoSchedule", "NoExecute"]),
        "tolerationSeconds": integer("With NoExecute: how long the pod stays once the taint appears.",
                                     bits=64),
    }), max_items=32)

NODE_SELECTOR = obj(
    "Node labels the step's pod must run on. A step's entries are added to spec.defaults.nodeSelector "
    "and win on a clash. Ignored by `stepflow run`.", max_properties=32,
    values=string("The label's value.", max_length=63))

POD_METADATA = obj(
    "Labels and annotations for the step's pod (service meshes, secret injectors, cost labels). A "
    "step's entries win over spec.defaults.podMetadata; labels under stepflow.dev/ and the Job "
    "controller's are reserved (InvalidSpec).", {
        "labels": obj("Labels of the step's pod.", max_properties=64,
                      values=string("The label's value.", max_length=63)),
        "annotations": obj("Annotations of the step's pod.", max_properties=64,
                           values=string("The annotation's value.", max_length=4096)),
    })
