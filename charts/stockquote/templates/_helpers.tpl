{{/* Chart name, overridable. */}}
{{- define "stockquote.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name prefix of every resource: <release>-<chart> unless overridden.
It must be an RFC 1035 label (Service names are): the API server would
reject every object otherwise, and only on a real install (not on
`helm template` nor `--dry-run=server`), so fail early and say why.
*/}}
{{- define "stockquote.fullname" -}}
{{- $full := "" -}}
{{- if .Values.fullnameOverride -}}
{{- $full = .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- $full = .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $full = printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $full) -}}
{{- fail (printf "object name prefix %q (from the release name, nameOverride or fullnameOverride) is not an RFC 1035 label: use lower-case letters, digits and '-', starting with a letter" $full) -}}
{{- end -}}
{{- $full -}}
{{- end -}}

{{/* Name of one component's resources: (dict "ctx" $ "component" "api"). */}}
{{- define "stockquote.componentName" -}}
{{- printf "%s-%s" (include "stockquote.fullname" .ctx | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "stockquote.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "stockquote.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stockquote
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "api"). */}}
{{- define "stockquote.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stockquote.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component's objects. */}}
{{- define "stockquote.componentLabels" -}}
{{ include "stockquote.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Image reference: (dict "ctx" $ "repository" "stockquote/apiservice"). */}}
{{- define "stockquote.image" -}}
{{- $tag := .ctx.Values.image.tag | default .ctx.Chart.AppVersion -}}
{{- if .ctx.Values.image.registry -}}
{{- printf "%s/%s:%s" .ctx.Values.image.registry .repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "stockquote.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "stockquote.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Secret holding DATABASE_URL, AMQP_URL, JWT_SECRET (and bundle passwords). */}}
{{- define "stockquote.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "stockquote.fullname" .) -}}
{{- end -}}

{{/* Database host and port, bundled or external. */}}
{{- define "stockquote.dbHost" -}}
{{- if .Values.bundled.postgresql.enabled -}}
{{- include "stockquote.componentName" (dict "ctx" . "component" "postgresql") -}}
{{- else -}}
{{- .Values.database.host -}}
{{- end -}}
{{- end -}}
{{- define "stockquote.dbPort" -}}
{{- if .Values.bundled.postgresql.enabled -}}5432{{- else -}}{{ .Values.database.port }}{{- end -}}
{{- end -}}

{{/* Broker host and port, bundled or external. */}}
{{- define "stockquote.amqpHost" -}}
{{- if .Values.bundled.rabbitmq.enabled -}}
{{- include "stockquote.componentName" (dict "ctx" . "component" "rabbitmq") -}}
{{- else -}}
{{- .Values.amqp.host -}}
{{- end -}}
{{- end -}}
{{- define "stockquote.amqpPort" -}}
{{- if .Values.bundled.rabbitmq.enabled -}}5672{{- else -}}{{ .Values.amqp.port }}{{- end -}}
{{- end -}}

{{/*
The request queue's type (RPC_QUEUE_TYPE of both programs): rpcQueueType,
else classic for the bundled single-node broker and quorum for an external
one (a cluster's replicated queue).
*/}}
{{- define "stockquote.rpcQueueType" -}}
{{- if .Values.rpcQueueType -}}
{{- .Values.rpcQueueType -}}
{{- else if .Values.bundled.rabbitmq.enabled -}}
classic
{{- else -}}
quorum
{{- end -}}
{{- end -}}

{{/*
Where an app's pods run: its affinity, or the podAntiAffinity preset
(soft: prefer other nodes; hard: require them), and topology spread
constraints over topologySpread.topologyKeys. Takes dict "c" (the
component context) "v" (the component's values).
*/}}
{{- define "stockquote.scheduling" -}}
{{- $sel := include "stockquote.selectorLabels" .c }}
{{- if .v.affinity }}
affinity:
  {{- toYaml .v.affinity | nindent 2 }}
{{- else if eq .v.podAntiAffinity "soft" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- $sel | nindent 14 }}
{{- else if eq .v.podAntiAffinity "hard" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- $sel | nindent 12 }}
{{- end }}
{{- with .v.topologySpread.topologyKeys }}
topologySpreadConstraints:
  {{- range . }}
  - maxSkew: {{ $.v.topologySpread.maxSkew }}
    topologyKey: {{ . }}
    whenUnsatisfiable: {{ $.v.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- $sel | nindent 8 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Percent-encodes a URL userinfo part (urlquery writes a space as "+"). */}}
{{- define "stockquote.urlEscape" -}}
{{- urlquery . | replace "+" "%20" -}}
{{- end -}}

{{/* Pod security context shared by the app pods. */}}
{{- define "stockquote.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{/* Scrape annotations for the app pods when metrics.podAnnotations is on: (dict "ctx" $ "port" 8080). */}}
{{- define "stockquote.metricsAnnotations" -}}
{{- if .ctx.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end -}}
{{- end -}}

{{/* The API's /metrics port: the port of api.metricsAddr, or 8080 (the API port) when it is empty. */}}
{{- define "stockquote.apiMetricsPort" -}}
{{- if .Values.api.metricsAddr -}}
{{- $p := regexFind "[0-9]+$" .Values.api.metricsAddr | int -}}
{{- if or (lt $p 1) (gt $p 65535) (eq $p 8080) -}}
{{- fail (printf "api.metricsAddr %q: want a port from 1 to 65535 other than the API's 8080" .Values.api.metricsAddr) -}}
{{- end -}}
{{- $p -}}
{{- else -}}
8080
{{- end -}}
{{- end -}}

{{/* The name of the API's Service/container port /metrics is scraped on. */}}
{{- define "stockquote.apiMetricsPortName" -}}
{{- ternary "metrics" "http" (ne .Values.api.metricsAddr "") -}}
{{- end -}}

{{/*
GOMEMLIMIT of one program: (dict "v" .Values.api "key" "api"). An explicit
goMemLimit wins ("off" included); otherwise 90% of resources.limits.memory,
in whole MiB, so the Go runtime collects harder before the container's limit
is reached (the rest is for what the runtime does not count, chiefly the
program's code mapped from its binary); nothing without a memory limit.
*/}}
{{- define "stockquote.goMemLimit" -}}
{{- if .v.goMemLimit -}}
{{- .v.goMemLimit -}}
{{- else -}}
{{- $limit := "" -}}
{{- with .v.resources -}}{{- with .limits -}}{{- with .memory -}}{{- $limit = toString . -}}{{- end -}}{{- end -}}{{- end -}}
{{- if $limit -}}
{{- $pattern := "^([0-9]+(\\.[0-9]+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$" -}}
{{- if not (regexMatch $pattern $limit) -}}
{{- fail (printf "%s.resources.limits.memory %q: cannot derive GOMEMLIMIT from it (want a number with an optional k, M, G, T, Ki, Mi, Gi or Ti suffix); set %s.goMemLimit" .key $limit .key) -}}
{{- end -}}
{{- $units := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 -}}
{{- $number := regexReplaceAll $pattern $limit "${1}" | float64 -}}
{{- $unit := regexReplaceAll $pattern $limit "${3}" -}}
{{- $mib := divf (mulf $number (get $units $unit) 0.9) 1048576 | floor | int64 -}}
{{- if lt $mib 1 -}}
{{- fail (printf "%s.resources.limits.memory %q is too small to derive GOMEMLIMIT from; set %s.goMemLimit" .key $limit .key) -}}
{{- end -}}
{{- printf "%dMiB" $mib -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
STOOQ_API_KEY from the release's Secret (or secrets.existingSecret). The
key is optional there: without it the variable is unset and no key is sent.
*/}}
{{- define "stockquote.stooqKeyEnv" -}}
- name: STOOQ_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "stockquote.secretName" . }}
      key: STOOQ_API_KEY
      optional: true
{{- end -}}
