{{/* A training run's pod (templates/training/job.yaml and cronjob.yaml, one model's; universe.yaml,
the universe's Indexed Jobs). */}}

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
        # Who moved the alias, for the champion history (rollout/history.py): this Job and pod.
        - name: FORECASTER_WORKLOAD_JOB
          valueFrom:
            fieldRef: {fieldPath: "metadata.labels['batch.kubernetes.io/job-name']"}
        - name: FORECASTER_WORKLOAD_HOST
          valueFrom:
            fieldRef: {fieldPath: metadata.name}
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
