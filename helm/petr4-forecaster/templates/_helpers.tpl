{{/*
Shared helpers: names, labels, the image reference, security contexts and the small snippets every
component uses. What one component renders lives in its own partial:
  predictor/_predictor.tpl     the InferenceService's predictor (spec, pod, model, arguments)
  predictor/_transformer.tpl   its transformer
  training/_pod.tpl            the training pod (bootstrap Job, CronJob) and the universe's Job spec
  rollout/_rollout.tpl         the pin that ends a training pod
  monitor/_deployment.tpl      a realized-accuracy monitor
  tests/_pod.tpl               a `helm test` Pod
  mlflow/_client.tpl           how clients reach MLflow (tracking URIs, env, egress rules)
  common/_serviceaccount.tpl   a component's ServiceAccount (+ Role)
  common/_universe.tpl         the universe's shards, object names and checks
A component of its own (a Deployment: the realized-accuracy monitor in templates/monitor/, the
Alertmanager webhook receiver in templates/retrainer/, ...) needs only:
  templates/<component>/{deployment,service,networkpolicy}.yaml using
    petr4.labels / petr4.selectorLabels (dict "ctx" $ "component" "<component>")
    petr4.serviceAccount (its ServiceAccount, plus a Role only when it is given rules)
    petr4.podSecurityContext / petr4.containerSecurityContext / petr4.tmpVolume
    petr4.egressDns, and if it writes to / reads MLflow petr4.mlflowClientEnv / petr4.mlflowReaderEnv
    with petr4.egressMlflow / petr4.egressMlflowReader (mlflow/_client.tpl)
  a block in values.yaml and in values.schema.json (additionalProperties false). Then run
  scripts/render-manifests.py: the kustomize base picks every template up by itself.
*/}}

{{- define "petr4.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "petr4.fullname" -}}
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

{{/* Object name of a component: <fullname>-<component>. */}}
{{- define "petr4.componentName" -}}
{{- printf "%s-%s" (include "petr4.fullname" .ctx) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades (never add a version here). */}}
{{- define "petr4.selectorLabels" -}}
app.kubernetes.io/name: {{ include "petr4.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of every object: selector labels, version, part-of, commonLabels (+ Helm's own). */}}
{{- define "petr4.labels" -}}
{{ include "petr4.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: petr4-forecaster
{{- if .ctx.Values.helmLabels }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{- end }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Image reference: registry/repository(@digest|:tag); no registry is an error at template time
(an unqualified name would be pulled from Docker Hub). (dict "ctx" $ "image" "serve"|"train") */}}
{{- define "petr4.image" -}}
{{- $img := index .ctx.Values.images .image }}
{{- $registry := required "images.registry is required: the registry your cluster pulls petr4-forecaster-serve and petr4-forecaster-train from (e.g. --set images.registry=registry.example.org/ml; docs/deploy.md, Images)" .ctx.Values.images.registry }}
{{- $repo := printf "%s/%s" (trimSuffix "/" $registry) $img.repository }}
{{- if $img.digest }}
{{- printf "%s@%s" $repo $img.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .ctx.Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/* Registered model / InferenceService name: `PETR4.SA` -> `petr4-sa-forecaster` (training's rule). */}}
{{- define "petr4.modelName" -}}
{{- if .name }}
{{- .name }}
{{- else }}
{{- printf "%s-forecaster" (regexReplaceAll "[^a-z0-9]+" (lower .ticker) "-" | trimAll "-") }}
{{- end }}
{{- end }}

{{/* Short name of a model's objects (Job, CronJob) derived from the model name. */}}
{{- define "petr4.modelShort" -}}
{{- include "petr4.modelName" . | trimSuffix "-forecaster" }}
{{- end }}

{{/* Name of a model's retraining CronJob (52 characters at most: the CronJob controller appends
11 to its Jobs' names). The retrainer's Role and its model -> CronJob map use the same helper.
(dict "ctx" $ "model" $model) */}}
{{- define "petr4.cronJobName" -}}
{{- printf "%s-retrain-%s" (include "petr4.fullname" .ctx) (include "petr4.modelShort" .model) | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/* Deployment and Service of a model's realized-accuracy monitor. (dict "ctx" $ "model" $model) */}}
{{- define "petr4.monitorName" -}}
{{- printf "%s-%s" (include "petr4.componentName" (dict "ctx" .ctx "component" "monitor")) (include "petr4.modelShort" .model) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret holding the retrainer's bearer token (created by the operator, never by the chart). */}}
{{- define "petr4.retrainerSecretName" -}}
{{- default (include "petr4.componentName" (dict "ctx" . "component" "retrainer-token")) .Values.retrainer.tokenSecret.name }}
{{- end }}

{{/* Pod security context; uid/gid/fsGroup left to the platform when null (OpenShift's
restricted-v2 assigns them from the namespace's range). */}}
{{- define "petr4.podSecurityContext" -}}
runAsNonRoot: true
{{- include "petr4.ids" (dict "sc" .Values.securityContext "fs" true) }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Complete at container level too: Knative allows no pod securityContext by default. */}}
{{- define "petr4.containerSecurityContext" -}}
runAsNonRoot: true
{{- include "petr4.ids" (dict "sc" .Values.securityContext "fs" false) }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* runAsUser / runAsGroup (/ fsGroup), each only when set. (dict "sc" .Values.securityContext "fs" bool) */}}
{{- define "petr4.ids" -}}
{{- with .sc.runAsUser }}
runAsUser: {{ . }}
{{- end }}
{{- with .sc.runAsGroup }}
runAsGroup: {{ . }}
{{- end }}
{{- if .fs }}
{{- with .sc.fsGroup }}
fsGroup: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* The one writable place of a container: an emptyDir at /tmp (HOME points there). */}}
{{- define "petr4.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ default "1Gi" .sizeLimit }}
{{- end }}

{{- define "petr4.imagePullSecrets" -}}
{{- with .Values.images.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* Escape hatches of every pod spec: scheduling. */}}
{{- define "petr4.podScheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* Escape hatches of every main container: extra env items (appended to a container's env list). */}}
{{- define "petr4.extraEnv" -}}
{{- with .Values.extraEnv }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/* ... and envFrom (a whole `envFrom:` key, or nothing). */}}
{{- define "petr4.extraEnvFrom" -}}
{{- with .Values.extraEnvFrom }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* NetworkPolicy egress rule: the cluster DNS. */}}
{{- define "petr4.egressDns" -}}
- to:
    - namespaceSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.dns.namespaceLabels | nindent 10 }}
      podSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.dns.podLabels | nindent 10 }}
  ports:
    {{- range .Values.networkPolicy.dns.ports }}
    - {protocol: UDP, port: {{ . }}}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end }}

{{/* "true" when objects of a CRD-backed API are to be rendered: `enabled` true or false decides;
null (the default) = when the cluster serves the API (`.Capabilities.APIVersions.Has`), so an
install without the prometheus-operator CRDs works. (dict "ctx" $ "enabled" nil|bool "api" "group/version/Kind") */}}
{{- define "petr4.apiEnabled" -}}
{{- if kindIs "invalid" .enabled }}
{{- if .ctx.Capabilities.APIVersions.Has .api }}true{{ end }}
{{- else if .enabled }}true
{{- end }}
{{- end }}
