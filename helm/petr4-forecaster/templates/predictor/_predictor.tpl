{{/* The predictor of an InferenceService (templates/predictor/inferenceservice.yaml, one per model;
universe.yaml, one per shard): the stable spec and a Standard-mode canary share the pod fields and the
`model:` (the custom runtime's container, with the predictor's arguments). */}}

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

{{/* The model format the chart's ServingRuntime serves (bundle format of bundle/schema.py). */}}
{{- define "petr4.modelFormat" -}}
petr4-forecaster-bundle
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
  {{- include "petr4.calibrationVolume" (dict "ctx" $ctx "names" (include "petr4.servedModels" . | fromJsonArray)) | nindent 2 }}
{{- end }}

{{/* The model names a predictor serves (JSON list): a universe shard's ("names"), else its model's.
(dict "model" $model ["names" (list ...)]) */}}
{{- define "petr4.servedModels" -}}
{{- toJson (default (list (include "petr4.modelName" .model)) .names) }}
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
  {{- include "petr4.calibrationMount" $ctx | nindent 2 }}
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
{{- include "petr4.calibrationArgs" .ctx }}
{{- range $p.extraArgs }}
- {{ . | quote }}
{{- end }}
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
