{{/* The name of every object, and of the Lease: "stepflow-operator" unless overridden. */}}
{{- define "stepflow.fullname" -}}
{{- default "stepflow-operator" .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The labels deploy/ gives every object, then Helm's own. */}}
{{- define "stepflow.labels" -}}
app.kubernetes.io/name: {{ include "stepflow.fullname" . }}
app.kubernetes.io/part-of: stepflow
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Immutable once installed: the Deployment's selector, the Service's and the PDB's. */}}
{{- define "stepflow.selector" -}}
app.kubernetes.io/name: {{ include "stepflow.fullname" . }}
{{- end -}}

{{- define "stepflow.image" -}}
{{- $image := .Values.image.repository -}}
{{- if .Values.image.tag -}}{{- $image = printf "%s:%s" $image .Values.image.tag -}}{{- end -}}
{{- if .Values.image.digest -}}{{- $image = printf "%s@%s" $image .Values.image.digest -}}{{- end -}}
{{- $image -}}
{{- end -}}

{{/* The operator's rights (deploy/manifests/clusterrole.yaml, deploy/namespaced/role.yaml): the
same rules in both scopes, except ClusterStepTypes, which a namespaced operator is not granted. */}}
{{- define "stepflow.rules" -}}
# Watch Workflows; write their status. kopf writes nothing else to them (on.event handlers).
- apiGroups: [stepflow.dev]
  resources: [workflows]
  verbs: [list, watch]
- apiGroups: [stepflow.dev]
  resources: [workflows/status]
  verbs: [patch]
# Jobs name their Workflow as owner with blockOwnerDeletion; under OwnerReferencesPermissionEnforcement
# (OpenShift) that needs update on the owner's finalizers. No finalizer is ever written.
- apiGroups: [stepflow.dev]
  resources: [workflows/finalizers]
  verbs: [update]
- apiGroups: [stepflow.dev]
  resources: [steppools]
  verbs: [list, watch]
- apiGroups: [stepflow.dev]
  resources: [steppools/status]
  verbs: [patch]
- apiGroups: [stepflow.dev]
  resources: {{ if eq .Values.scope "cluster" }}[steptypes, clustersteptypes]{{ else }}[steptypes]{{ end }}
  verbs: [list, watch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, get, list, watch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, list]
{{- end -}}
