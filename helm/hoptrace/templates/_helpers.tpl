{{- define "hoptrace.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hoptrace.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "hoptrace.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "hoptrace.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "hoptrace.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hoptrace.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hoptrace.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "hoptrace.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hoptrace.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hoptrace.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The agent's config file: the same keys as `hoptrace run --config` on a host. What the chart
decides (discovery, metrics address, propagation, Kubernetes) first, then .Values.config
over it. The OTLP endpoint is not here: it comes from the environment, where the node's IP
can be substituted.
*/}}
{{- define "hoptrace.config" -}}
{{- $exclude := list (dict "namespace" .Release.Namespace "workload" (include "hoptrace.fullname" .)) }}
{{- range .Values.discovery.exclude }}{{ $exclude = append $exclude . }}{{ end }}
{{- $otlp := dict "protocol" .Values.otlp.protocol "insecure" .Values.otlp.insecure }}
{{- if .Values.otlp.headers }}{{ $_ := set $otlp "headers" .Values.otlp.headers }}{{ end }}
{{- if .Values.otlp.compression }}{{ $_ := set $otlp "compression" .Values.otlp.compression }}{{ end }}
{{- $propagation := dict "enabled" .Values.propagation.enabled }}
{{- if .Values.propagation.enabled }}
{{- $_ := set $propagation "scope" .Values.propagation.scope }}
{{- if eq .Values.propagation.scope "pods" }}{{ $_ := set $propagation "cgroup_root" "/host/sys/fs/cgroup" }}
{{- else }}{{ $_ := set $propagation "cgroup" .Values.propagation.cgroup }}{{ end }}
{{- end }}
{{- $base := dict
      "output" (list "otlp")
      "log_level" .Values.logLevel
      "kubernetes" (dict "enabled" true)
      "discovery" (dict "include" .Values.discovery.include "exclude" $exclude)
      "metrics" (dict "address" (printf "0.0.0.0:%d" (int .Values.metrics.port)))
      "propagation" $propagation
      "otlp" $otlp }}
{{- mustMergeOverwrite $base (deepCopy .Values.config) | toYaml }}
{{- end }}
