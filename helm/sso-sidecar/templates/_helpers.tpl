{{/* Chart name, truncated to the 63 characters Kubernetes allows in names. */}}
{{- define "sso-sidecar.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release + chart, unless the release name already contains the chart name. */}}
{{- define "sso-sidecar.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sso-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sso-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sso-sidecar.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "sso-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "sso-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sso-sidecar.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret whose keys become the proxy's environment (client secrets, session keys). */}}
{{- define "sso-sidecar.secretName" -}}
{{- default (include "sso-sidecar.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "sso-sidecar.createSecret" -}}
{{- if and (not .Values.secrets.existingSecret) (or .Values.secrets.values .Values.redis.url) -}}true{{- end -}}
{{- end -}}

{{/* The upstream: the shop's container in the same pod (sidecar mode) or `upstream`. */}}
{{- define "sso-sidecar.upstream" -}}
{{- if eq .Values.mode "sidecar" -}}
{{- printf "http://127.0.0.1:%d" (int .Values.shop.port) -}}
{{- else -}}
{{- required "upstream is required in standalone mode" .Values.upstream -}}
{{- end -}}
{{- end -}}

{{/* The whole TOML config: [server], [admin] and [store] from values, the rest from `config`. */}}
{{- define "sso-sidecar.config" -}}
# Written by the sso-sidecar Helm chart; [server], [admin] and [store] come from its values.
[server]
listen = "0.0.0.0:{{ int .Values.ports.http }}"
upstream = {{ include "sso-sidecar.upstream" . | quote }}
{{- with .Values.publicUrl }}
public_url = {{ . | quote }}
{{- end }}
{{- with .Values.trustedProxies }}
trusted_proxies = [{{ range $i, $p := . }}{{ if $i }}, {{ end }}{{ $p | quote }}{{ end }}]
{{- end }}
{{- if gt (int .Values.threads) 0 }}
threads = {{ int .Values.threads }}
{{- end }}
{{- if .Values.tls.enabled }}
tls = { cert = "file:/etc/sso-sidecar-tls/tls.crt", key = "file:/etc/sso-sidecar-tls/tls.key" }
{{- end }}

[admin]
listen = "0.0.0.0:{{ int .Values.ports.admin }}"
{{- if .Values.redis.enabled }}

[store]
kind = "redis"
url = "env:SSO_REDIS_URL"
key_prefix = {{ .Values.redis.keyPrefix | quote }}
timeout = {{ .Values.redis.timeout | quote }}
server_side_sessions = {{ .Values.redis.serverSideSessions }}
{{- else }}

[store]
# Without Redis, revocations (logouts) are kept in this file across restarts.
path = "/var/lib/sso-sidecar/state.redb"
{{- end }}

{{ .Values.config }}
{{- end -}}
