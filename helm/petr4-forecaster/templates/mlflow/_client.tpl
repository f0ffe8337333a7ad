{{/* How MLflow's clients reach it: the writers' and readers' tracking URIs (rendered into the config
ConfigMap), the env that reads them, and the NetworkPolicy egress rules to the server (in-cluster or
external). The server's own objects are the other files of templates/mlflow/. */}}

{{/* The tracking URI of the writers: training and its rollout pin (in-cluster MLflow's own port,
or the external server). */}}
{{- define "petr4.trackingUri" -}}
{{- if .Values.mlflow.enabled }}
{{- printf "http://%s:%v" (include "petr4.componentName" (dict "ctx" . "component" "mlflow")) .Values.mlflow.port }}
{{- else }}
{{- required "mlflow.externalUri is required when mlflow.enabled is false" .Values.mlflow.externalUri }}
{{- end }}
{{- end }}

{{/* The tracking URI of the readers (predictors, storage initializer, monitors): the read-only
sidecar's port (GET and HEAD only), or the external server's (externalReadOnlyUri, else externalUri). */}}
{{- define "petr4.readOnlyTrackingUri" -}}
{{- if .Values.mlflow.enabled }}
{{- printf "http://%s:%v" (include "petr4.componentName" (dict "ctx" . "component" "mlflow")) .Values.mlflow.readOnlyPort }}
{{- else }}
{{- default (include "petr4.trackingUri" .) .Values.mlflow.externalReadOnlyUri }}
{{- end }}
{{- end }}

{{/* Environment every MLflow client container gets: the URI from the config ConfigMap (so a
kustomize overlay swaps it in one place) and the optional auth Secret, referenced by name.
petr4.mlflowClientEnv is the writers' (tracking-uri), petr4.mlflowReaderEnv the readers'
(read-only-tracking-uri); both set FORECASTER_TRACKING_URI. */}}
{{- define "petr4.mlflowClientEnv" -}}
{{- include "petr4.mlflowEnv" (dict "ctx" . "key" "tracking-uri") }}
{{- end }}

{{- define "petr4.mlflowReaderEnv" -}}
{{- include "petr4.mlflowEnv" (dict "ctx" . "key" "read-only-tracking-uri") }}
{{- end }}

{{- define "petr4.mlflowEnv" -}}
{{- $ctx := .ctx -}}
- name: FORECASTER_TRACKING_URI
  valueFrom:
    configMapKeyRef:
      name: {{ include "petr4.componentName" (dict "ctx" $ctx "component" "config") }}
      key: {{ .key }}
{{- with $ctx.Values.mlflow.auth.existingSecret }}
- name: MLFLOW_TRACKING_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $ctx.Values.mlflow.auth.usernameKey }}
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $ctx.Values.mlflow.auth.passwordKey }}
{{- end }}
{{- end }}

{{/* NetworkPolicy egress rule: the MLflow server (in-cluster pods, or the external peers).
petr4.egressMlflow is the writers' (MLflow's own port), petr4.egressMlflowReader the readers'
(the read-only port, or the external read URI's port). */}}
{{- define "petr4.egressMlflow" -}}
{{- include "petr4.egressMlflowTo" (dict "ctx" . "port" .Values.mlflow.port "uri" .Values.mlflow.externalUri) }}
{{- end }}

{{- define "petr4.egressMlflowReader" -}}
{{- $uri := default .Values.mlflow.externalUri .Values.mlflow.externalReadOnlyUri }}
{{- include "petr4.egressMlflowTo" (dict "ctx" . "port" .Values.mlflow.readOnlyPort "uri" $uri) }}
{{- end }}

{{- define "petr4.egressMlflowTo" -}}
{{- $v := .ctx.Values }}
{{- if $v.mlflow.enabled -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "petr4.selectorLabels" (dict "ctx" .ctx "component" "mlflow") | nindent 10 }}
  ports:
    - {protocol: TCP, port: {{ .port }}}
{{- else }}
{{- $uri := urlParse .uri }}
{{- $port := 443 }}
{{- if eq $uri.scheme "http" }}{{ $port = 80 }}{{ end }}
{{- if contains ":" $uri.host }}{{ $port = (last (splitList ":" $uri.host)) | int }}{{ end }}
- {{- with $v.mlflow.externalEgress }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - {protocol: TCP, port: {{ $port }}}
{{- end }}
{{- end }}
