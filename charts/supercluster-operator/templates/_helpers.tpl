{{/* Names, labels and values derived once (like nats.defaultValues in the NATS chart). */}}

{{- define "sco.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sco.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sco.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{- define "sco.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sco.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sco.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object, without the component. */}}
{{- define "sco.baseLabels" -}}
helm.sh/chart: {{ include "sco.chart" . }}
app.kubernetes.io/name: {{ include "sco.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: supercluster
{{- with .Values.global.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "sco.labels" -}}
{{ include "sco.baseLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "sco.serviceAccountName" -}}
{{- if .Values.serviceAccount.enabled }}
{{- default (include "sco.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* registry/repository[:tag][@digest]; global.image.registry applies when image.registry is empty. */}}
{{- define "sco.image" -}}
{{- $image := .Values.container.image }}
{{- $registry := default .Values.global.image.registry $image.registry }}
{{- $ref := $image.repository }}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $ref }}{{ end }}
{{- if $image.digest }}
{{- printf "%s@%s" $ref $image.digest }}
{{- else }}
{{- printf "%s:%s" $ref (default .Chart.AppVersion $image.tag | toString) }}
{{- end }}
{{- end }}

{{- define "sco.pullPolicy" -}}
{{- default .Values.container.image.pullPolicy .Values.global.image.pullPolicy }}
{{- end }}

{{/* true when the operator watches every namespace (cluster-scoped RBAC). */}}
{{- define "sco.clusterWide" -}}
{{- if empty .Values.operator.watchNamespaces }}true{{ end }}
{{- end }}

{{- define "sco.peeringName" -}}
{{- default (include "sco.fullname" .) .Values.operator.peering.name }}
{{- end }}

{{/* Arguments of `scoperator run` (see `scoperator run --help`). */}}
{{- define "sco.args" -}}
- run
# "--": the flags below belong to `run`, whatever the top-level parser makes of them
- --
{{- if include "sco.clusterWide" . }}
- --all-namespaces
{{- else }}
{{- range .Values.operator.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- end }}
{{- if .Values.operator.metrics.enabled }}
- --metrics-host=0.0.0.0
- --metrics-port={{ .Values.operator.metrics.port }}
{{- else }}
- --metrics-port=-1
{{- end }}
- --liveness=http://0.0.0.0:{{ .Values.operator.health.port }}{{ .Values.operator.health.path }}
{{- if ne .Values.operator.clusterDomain "cluster.local" }}
- --cluster-domain={{ .Values.operator.clusterDomain }}
{{- end }}
{{- if eq .Values.operator.logLevel "debug" }}
- --verbose
{{- end }}
{{- if .Values.operator.peering.enabled }}
- --peering={{ include "sco.peeringName" . }}
{{- if .Values.operator.peering.priority }}
- --priority={{ .Values.operator.peering.priority }}
{{- end }}
{{- end }}
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* Namespaced rules: our CRDs and everything the operator creates or observes. */}}
{{- define "sco.namespacedRules" -}}
# SuperCluster and Cluster: watch, kopf's progress annotations, status, owner-reference finalizers
- apiGroups: [supercluster.dev]
  resources: [superclusters, clusters]
  verbs: [get, list, watch, patch, update]
- apiGroups: [supercluster.dev]
  resources: [superclusters/status, clusters/status]
  verbs: [get, patch, update]
- apiGroups: [supercluster.dev]
  resources: [superclusters/finalizers, clusters/finalizers]
  verbs: [update]
# children of each Cluster: server config, credentials include, services, servers, PDB
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, list, watch, create, update, patch, delete]
# Secrets: read the users' password Secrets, write the generated credentials include, the
# link credentials, the CA and the certificates (spec.tls)
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update, patch, delete]
# cert-manager Certificates for spec.tls.issuerRef (harmless without cert-manager)
- apiGroups: [cert-manager.io]
  resources: [certificates]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, create, update, patch, delete]
{{- if .Values.rbac.toolbox }}
# the toolbox Deployment of SuperClusters with spec.toolbox.enabled
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, update, patch, delete]
{{- end }}
# PodMonitors and ServiceMonitors for spec.metrics (harmless without the Prometheus Operator)
- apiGroups: [monitoring.coreos.com]
  resources: [podmonitors, servicemonitors]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, update, patch, delete]
# observing servers (readiness, restarts)
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# kopf posts handler progress and errors as events
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- if .Values.operator.peering.enabled }}
# kopf peering (namespaced)
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- with .Values.rbac.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Cluster-scoped rules kopf needs in every mode. */}}
{{- define "sco.clusterRules" -}}
# kopf scans CRDs to resolve the resources it serves
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
# kopf observes namespaces even when given explicit names (it falls back after 9 retries)
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- if and (include "sco.clusterWide" .) .Values.operator.peering.enabled }}
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}
