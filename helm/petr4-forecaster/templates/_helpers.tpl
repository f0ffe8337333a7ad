{{/*
Shared helpers. A component of its own (a Deployment: the realized-accuracy monitor in
templates/monitor/, the Alertmanager webhook receiver in templates/retrainer/, ...) needs only:
  templates/<component>/{deployment,service,networkpolicy}.yaml using
    petr4.labels / petr4.selectorLabels (dict "ctx" $ "component" "<component>")
    petr4.serviceAccount (its ServiceAccount, plus a Role only when it is given rules)
    petr4.podSecurityContext / petr4.containerSecurityContext / petr4.tmpVolume
    petr4.mlflowClientEnv / petr4.mlflowReaderEnv (if it writes to / reads MLflow) and petr4.egressDns /
    petr4.egressMlflow / petr4.egressMlflowReader
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

{{/* ServiceAccount without a token; a Role + RoleBinding only if the component needs the API.
(dict "ctx" $ "component" "x" "rules" (list ...)) */}}
{{- define "petr4.serviceAccount" -}}
{{- $name := include "petr4.componentName" . }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "petr4.labels" . | nindent 4 }}
automountServiceAccountToken: false
{{- if .rules }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "petr4.labels" . | nindent 4 }}
rules:
  {{- toYaml .rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "petr4.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $name }}
    namespace: {{ .ctx.Release.Namespace }}
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

{{/* The MLflow URI a predictor serves: models:/<name>/<version> when a version is pinned,
else models:/<name>@<alias>. (dict "model" $model "version" "" "alias" "champion") */}}
{{- define "petr4.modelUri" -}}
{{- $name := include "petr4.modelName" .model }}
{{- if .version }}
{{- printf "models:/%s/%v" $name .version }}
{{- else }}
{{- printf "models:/%s@%s" $name .alias }}
{{- end }}
{{- end }}

{{/* Arguments of the predictor container (one place for the chart and the kustomize base).
storageUri delivery: KServe's storage initializer has put the verified bundle at /mnt/models before
the container starts, and the revision pins it (no polling). mlflow delivery: the predictor resolves
the URI itself and polls the alias. A universe shard of several models ("sources": their models:/
URIs) has no --model_name: every /mnt/models/<model>/ is a model named after its directory
(storageUri), or --model-sources lists them (mlflow). (dict "ctx" $ "model" $model "uri" "models:/..."
["sources" (list ...)]) */}}
{{- define "petr4.predictorArgs" -}}
{{- $name := include "petr4.modelName" .model }}
{{- $p := .ctx.Values.predictor }}
{{- $many := gt (len (default (list) .sources)) 1 }}
{{- if not $many -}}
- --model_name
- {{ $name }}
{{- end }}
{{- if eq $p.delivery "storageUri" }}
- --model-source
- /mnt/models
- --reload-interval-s
- "0"
{{- else }}
{{- if $many }}
- --model-sources
- {{ join "," .sources }}
{{- else }}
- --model-source
- {{ .uri }}
{{- end }}
- --tracking-uri
- $(FORECASTER_TRACKING_URI)
- --reload-interval-s
- {{ $p.reloadIntervalSeconds | quote }}
{{- end }}
- --http_port
- "8080"
- --grpc_port
- "8081"
- --workers
- {{ $p.workers | quote }}
- --threads
- {{ $p.threads | quote }}
- --variant
- {{ $p.variant }}
{{- range $p.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* The `model:` of a predictor: KServe's documented shape for a custom runtime (ServingRuntime
templates/predictor/servingruntime.yaml), which the canary rules require of the stable predictor.
Its container fields override the runtime's. (dict "ctx" $ "model" $model "uri" "models:/...") */}}
{{- define "petr4.predictorModel" -}}
{{- $ctx := .ctx }}
{{- $v := $ctx.Values }}
{{- $standard := eq $v.kserve.deploymentMode "Standard" -}}
name: kserve-container  # the runtime's container it overrides (required by the canary's schema)
modelFormat:
  name: {{ include "petr4.modelFormat" $ctx }}
  version: "1"
runtime: {{ include "petr4.componentName" (dict "ctx" $ctx "component" "predictor") }}
protocolVersion: v2
{{- if eq $v.predictor.delivery "storageUri" }}
storageUri: {{ .uri }}
{{- end }}
image: {{ include "petr4.image" (dict "ctx" $ctx "image" "serve") }}
imagePullPolicy: {{ $v.images.pullPolicy }}
args:
  {{- include "petr4.predictorArgs" . | trim | nindent 2 }}
env:
  - {name: PROMETHEUS_MULTIPROC_DIR, value: /tmp/metrics}
  - {name: FORECASTER_PREDICTOR_CACHE_DIR, value: /tmp/bundles}
  - {name: HOME, value: /tmp}
  {{- if ne $v.predictor.delivery "storageUri" }}
  {{- include "petr4.mlflowReaderEnv" $ctx | nindent 2 }}
  {{- end }}
  {{- with $v.predictor.apiToken.existingSecret }}
  # Bearer token required on the inference routes, from a Secret the chart only references.
  - name: FORECASTER_PREDICTOR_API_TOKEN
    valueFrom:
      secretKeyRef: {name: {{ . }}, key: {{ $v.predictor.apiToken.key }}}
  {{- end }}
  {{- with (include "petr4.extraEnv" $ctx) }}{{ . | trim | nindent 2 }}{{ end }}
{{- include "petr4.extraEnvFrom" $ctx }}
ports:
  - {name: http1, containerPort: 8080, protocol: TCP}
  {{- if $standard }}
  - {name: grpc, containerPort: 8081, protocol: TCP}
  {{- end }}
livenessProbe:
  httpGet: {path: /v2/health/live, port: 8080}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /v2/health/ready, port: 8080}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
resources:
  {{- toYaml (default $v.predictor.resources .model.resources) | nindent 2 }}
securityContext:
  {{- include "petr4.containerSecurityContext" $ctx | nindent 2 }}
volumeMounts:
  - {name: tmp, mountPath: /tmp}
{{- end }}

{{/* The model format the chart's ServingRuntime serves (bundle format of bundle/schema.py). */}}
{{- define "petr4.modelFormat" -}}
petr4-forecaster-bundle
{{- end }}

{{/* Pod-level fields of a predictor component (stable and canary alike). (dict "ctx" $) */}}
{{- define "petr4.predictorPod" -}}
{{- $ctx := .ctx }}
{{- $v := $ctx.Values }}
{{- $standard := eq $v.kserve.deploymentMode "Standard" -}}
serviceAccountName: {{ include "petr4.componentName" (dict "ctx" $ctx "component" "predictor") }}
automountServiceAccountToken: false
labels:
  {{- include "petr4.selectorLabels" (dict "ctx" $ctx "component" "predictor") | nindent 2 }}
  app.kubernetes.io/part-of: petr4-forecaster
  {{- with $v.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with $v.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- include "petr4.podScheduling" $ctx }}
{{- if $standard }}
securityContext:
  {{- include "petr4.podSecurityContext" $ctx | nindent 2 }}
{{- end }}
{{- include "petr4.imagePullSecrets" $ctx }}
volumes:
  {{- include "petr4.tmpVolume" (dict) | nindent 2 }}
{{- end }}

{{/* The stable predictor: replica bounds and the autoscaler's metric and target live here only
(KServe refuses them on canaries). (dict "ctx" $ "model" $model "uri" ... "canaryTrafficPercent" nil|int) */}}
{{- define "petr4.predictorSpec" -}}
{{- $v := .ctx.Values }}
{{- $standard := eq $v.kserve.deploymentMode "Standard" -}}
{{- if not (kindIs "invalid" .canaryTrafficPercent) }}
canaryTrafficPercent: {{ .canaryTrafficPercent }}
{{- end }}
minReplicas: {{ include "petr4.minReplicas" (dict "ctx" .ctx "model" .model) }}
maxReplicas: {{ ternary .model.maxReplicas $v.predictor.maxReplicas (not (kindIs "invalid" .model.maxReplicas)) }}
{{- if $standard }}
scaleMetric: {{ $v.kserve.hpa.metric }}
scaleTarget: {{ $v.kserve.hpa.targetUtilizationPercentage }}
{{- else }}
scaleMetric: {{ $v.kserve.knative.metric }}
scaleTarget: {{ $v.kserve.knative.target }}
{{- end }}
{{ include "petr4.predictorPod" . }}
model:
  {{- include "petr4.predictorModel" . | nindent 2 }}
{{- end }}

{{/* minReplicas of a model's stable predictor. (dict "ctx" $ "model" $model) */}}
{{- define "petr4.minReplicas" -}}
{{- ternary .model.minReplicas .ctx.Values.predictor.minReplicas (not (kindIs "invalid" .model.minReplicas)) }}
{{- end }}

{{/* A Standard-mode canary predictor (KServe 0.20 spec.canary[].predictor): a unique name, no
maxReplicas / scaleMetric / scaleTarget / autoScaling / workerSpec, minReplicas at most the stable
one's (left to KServe, which derives it from the traffic share, unless set).
(dict "ctx" $ "model" $model "uri" ... "canary" $canary) */}}
{{- define "petr4.canaryPredictorSpec" -}}
name: canary
{{- with .canary.minReplicas }}
minReplicas: {{ . }}
{{- end }}
{{ include "petr4.predictorPod" . }}
model:
  {{- include "petr4.predictorModel" . | nindent 2 }}
{{- end }}

{{/* Pod template of a training run (the bootstrap Job and the CronJob share it). With "universe"
(the universe's values) it is the pod of an Indexed Job: no --ticker, the tickers in
FORECASTER_TRAIN_UNIVERSE, and training takes the one at JOB_COMPLETION_INDEX (set by Kubernetes).
(dict "ctx" $ "model" $model "bootstrap" true|false ["universe" $u]) */}}
{{- define "petr4.trainingPodTemplate" -}}
{{- $ctx := .ctx }}
{{- $v := $ctx.Values }}
{{- $name := include "petr4.modelName" .model -}}
{{- /* A universe's Jobs pin nothing: one index cannot re-pin a shard that serves many models
without rolling it out once per promotion (docs/deploy.md, "A universe of tickers"). */}}
{{- $rollout := "" }}
{{- if not .universe }}
{{- $rollout = include "petr4.rolloutArgs" (dict "ctx" $ctx "model" .model) }}
{{- end -}}
metadata:
  labels:
    {{- include "petr4.labels" (dict "ctx" $ctx "component" "training") | nindent 4 }}
    {{- if .universe }}
    petr4-forecaster/universe: {{ .universe.name }}
    {{- else }}
    petr4-forecaster/model: {{ $name }}
    {{- end }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "petr4.componentName" (dict "ctx" $ctx "component" "training") }}
  automountServiceAccountToken: false
  restartPolicy: Never
  {{- with (include "petr4.podScheduling" $ctx) }}{{ . | trim | nindent 2 }}{{ end }}
  securityContext:
    {{- include "petr4.podSecurityContext" $ctx | nindent 4 }}
  {{- include "petr4.imagePullSecrets" $ctx | indent 2 }}
  initContainers:
    # Waits for the tracking server (its /health), so a fresh install does not burn retries.
    - name: wait-for-mlflow
      image: {{ include "petr4.image" (dict "ctx" $ctx "image" "train") }}
      imagePullPolicy: {{ $v.images.pullPolicy }}
      command: ["python", "-c"]
      args:
        - |
          import os, time, urllib.request
          url = os.environ["FORECASTER_TRACKING_URI"].rstrip("/") + "/health"
          for attempt in range(120):
              try:
                  urllib.request.urlopen(url, timeout=5)
                  break
              except OSError as error:
                  print(f"waiting for {url}: {error}", flush=True)
                  time.sleep(5)
          else:
              raise SystemExit(f"{url} did not answer in 10 minutes")
      env:
        {{- include "petr4.mlflowClientEnv" $ctx | nindent 8 }}
      resources:
        requests: {cpu: 10m, memory: 32Mi}
        limits: {cpu: 100m, memory: 64Mi}
      securityContext:
        {{- include "petr4.containerSecurityContext" $ctx | nindent 8 }}
  {{- if not $rollout }}
  containers:
  {{- end }}
    - name: training
      image: {{ include "petr4.image" (dict "ctx" $ctx "image" "train") }}
      imagePullPolicy: {{ $v.images.pullPolicy }}
      args:
        - --source
        - {{ $v.training.source }}
        {{- if not .universe }}
        - --ticker
        - {{ .model.ticker | quote }}
        - --model-name
        - {{ $name }}
        {{- end }}
        - --tracking-uri
        - $(FORECASTER_TRACKING_URI)
        - --output-dir
        - /tmp/out
        {{- if .bootstrap }}
        # Bootstrap: train only a model without a champion; fail when the gate refuses it.
        - --skip-if-champion
        - --require-promotion
        {{- end }}
        {{- range $v.training.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - {name: HOME, value: /tmp}
        - {name: MPLCONFIGDIR, value: /tmp/matplotlib}
        {{- with .universe }}
        # The universe; this pod trains the ticker at its JOB_COMPLETION_INDEX.
        - {name: FORECASTER_TRAIN_UNIVERSE, value: {{ join "," .tickers | quote }}}
        {{- end }}
        {{- include "petr4.mlflowClientEnv" $ctx | nindent 8 }}
        {{- with (include "petr4.extraEnv" $ctx) }}{{ . | trim | nindent 8 }}{{ end }}
      {{- with (include "petr4.extraEnvFrom" $ctx) }}{{ . | trim | nindent 6 }}{{ end }}
      resources:
        {{- toYaml (default $v.training.resources .model.trainingResources) | nindent 8 }}
      securityContext:
        {{- include "petr4.containerSecurityContext" $ctx | nindent 8 }}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
  {{- if $rollout }}
  # Training above is the last init container; this pin runs only after it succeeded (templates/rollout/).
  containers:
    {{- include "petr4.rolloutContainer" (dict "ctx" $ctx "model" .model) | nindent 4 }}
  {{- end }}
  volumes:
    {{- include "petr4.tmpVolume" (dict "sizeLimit" "2Gi") | nindent 4 }}
    {{- if $rollout }}
    {{- include "petr4.rolloutVolume" . | nindent 4 }}
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

{{/* Escape hatches of every pod: extra annotations and labels (pod metadata, indented by the caller). */}}
{{- define "petr4.podMetadataExtras" -}}
{{- with .Values.podLabels }}
labels:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
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

{{/* Extra NetworkPolicy rules of every component (networkPolicy.extraIngress / extraEgress). */}}
{{- define "petr4.extraRules" -}}
{{- with . }}
{{- toYaml . }}
{{- end }}
{{- end }}


{{/* --- universe (values `universe`): a list of tickers in a few objects -------------------------- */}}

{{/* The universe's tickers in shards of `shardSize`, in order (JSON list of lists): appending a
ticker changes the last shard only, so the others' InferenceServices are not rolled out. */}}
{{- define "petr4.universeShards" -}}
{{- $u := .Values.universe }}
{{- $size := int $u.shardSize }}
{{- $n := len $u.tickers }}
{{- $shards := list }}
{{- range $i := until (div (add $n (sub $size 1)) $size | int) }}
{{- $shards = append $shards (slice $u.tickers (mul $i $size | int) (min $n (mul (add $i 1) $size) | int)) }}
{{- end }}
{{- toJson $shards }}
{{- end }}

{{/* Name of a universe object: <fullname>-<kind>-<universe> (kind: train, retrain, monitor).
The CronJob's stays within 52 characters (its Jobs get 11 more). (dict "ctx" $ "kind" "train") */}}
{{- define "petr4.universeObject" -}}
{{- printf "%s-%s-%s" (include "petr4.fullname" .ctx) .kind .ctx.Values.universe.name | trunc (ternary 52 63 (eq .kind "retrain")) | trimSuffix "-" }}
{{- end }}

{{/* The universe's registered model names, in ticker order (JSON list). */}}
{{- define "petr4.universeModels" -}}
{{- $names := list }}
{{- range .Values.universe.tickers }}
{{- $names = append $names (include "petr4.modelName" (dict "ticker" .)) }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/* KServe refuses a deploymentMode change on update (validateDeploymentMode): fail here with
the way out instead of at admission. `lookup` is empty under `helm template`. Renders nothing.
(dict "ctx" $ "name" <InferenceService>) */}}
{{- define "petr4.deploymentModeGuard" -}}
{{- $mode := .ctx.Values.kserve.deploymentMode }}
{{- $standard := eq $mode "Standard" }}
{{- $name := .name }}
{{- $ns := .ctx.Release.Namespace }}
{{- with lookup "serving.kserve.io/v1beta1" "InferenceService" $ns $name }}
{{- $was := dig "status" "deploymentMode" "" . }}
{{- if and $was (ne (lower $was) (lower $mode)) (ne (lower $was) "rawdeployment") }}
{{- fail (printf "InferenceService %s runs in %s mode and KServe refuses to change it to %s on update: delete it first (kubectl -n %s delete isvc %s), then upgrade (docs/deploy.md, Changing the deployment mode)" $name $was $mode $ns $name) }}
{{- end }}
{{- if and (eq (lower $was) "rawdeployment") (not $standard) }}
{{- fail (printf "InferenceService %s runs in Standard (RawDeployment) mode and KServe refuses to change it to %s on update: delete it first (kubectl -n %s delete isvc %s), then upgrade" $name $mode $ns $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Spec of the universe's Indexed Job (bootstrap Job and CronJob alike): one completion per
ticker, at most `parallelism` pods at once, and retries counted per index (backoffLimitPerIndex,
Kubernetes >= 1.29 by default, GA in 1.33) so a failing ticker never stops the others; the Job
ends Failed only after every index has run. Exit 3 (the gate refused a bootstrap model) fails its
index at once, and an evicted or preempted pod is retried without counting.
(dict "ctx" $ "model" $model "bootstrap" true|false) */}}
{{- define "petr4.universeJobSpec" -}}
{{- $u := .ctx.Values.universe }}
{{- $t := .ctx.Values.training -}}
completionMode: Indexed
completions: {{ len $u.tickers }}
parallelism: {{ min $u.parallelism (len $u.tickers) }}
backoffLimitPerIndex: {{ $u.backoffLimitPerIndex }}
{{- with $u.maxFailedIndexes }}
maxFailedIndexes: {{ . }}
{{- end }}
podFailurePolicy:
  rules:
    - action: FailIndex
      onExitCodes: {containerName: training, operator: In, values: [3]}
    - action: Ignore
      onPodConditions: [{type: DisruptionTarget, status: "True"}]
activeDeadlineSeconds: {{ $u.activeDeadlineSeconds }}
ttlSecondsAfterFinished: {{ $t.ttlSecondsAfterFinished }}
template:
  {{- include "petr4.trainingPodTemplate" (dict "ctx" .ctx "model" .model "bootstrap" .bootstrap "universe" $u) | nindent 2 }}
{{- end }}

{{/* Name of shard <index>'s InferenceService. (dict "ctx" $ "index" 0) */}}
{{- define "petr4.universeShardName" -}}
{{- printf "%s-%d" .ctx.Values.universe.name (int .index) }}
{{- end }}

{{/* What would collide, refused at template time (renders nothing): no model at all, a ticker both
in `models` and in the universe (two trainers and two predictors of one registered model), two
tickers with one model name, or a universe named like a model (same Job, CronJob, monitor names). */}}
{{- define "petr4.universeChecks" -}}
{{- $u := .Values.universe }}
{{- if and (not .Values.models) (not $u.enabled) }}
{{- fail "nothing to serve: list tickers in models, or enable universe (universe.enabled=true, universe.tickers)" }}
{{- end }}
{{- if $u.enabled }}
{{- $single := dict }}
{{- range .Values.models }}
{{- $_ := set $single (include "petr4.modelName" .) .ticker }}
{{- if eq (include "petr4.modelShort" .) $u.name }}
{{- fail (printf "universe.name %q is the short name of models[%s]: their Jobs, CronJobs and monitors would share names; rename the universe" $u.name .ticker) }}
{{- end }}
{{- end }}
{{- $seen := dict }}
{{- range $u.tickers }}
{{- $name := include "petr4.modelName" (dict "ticker" .) }}
{{- if hasKey $single $name }}
{{- fail (printf "universe ticker %s is also in models (model %s): keep it in one place" . $name) }}
{{- end }}
{{- if hasKey $seen $name }}
{{- fail (printf "universe tickers %s and %s share the model name %s" (get $seen $name) . $name) }}
{{- end }}
{{- $_ := set $seen $name . }}
{{- end }}
{{- end }}
{{- end }}
