{{/* The transformer of an InferenceService (spec.transformer): tomorrow's forecast in one call.
`python -m transformer` from the serving image (no torch: kserve, pandas, exchange_calendars,
yfinance); KServe adds --predictor_host; it speaks v2 to the predictor. Renders nothing when
transformer.enabled is false. (dict "ctx" $ "model" $model) */}}
{{- define "petr4.transformer" -}}
{{- $ctx := .ctx }}
{{- $v := $ctx.Values }}
{{- $t := $v.transformer }}
{{- if $t.enabled }}
{{- $standard := eq $v.kserve.deploymentMode "Standard" -}}
transformer:
  serviceAccountName: {{ include "petr4.componentName" (dict "ctx" $ctx "component" "predictor") }}
  automountServiceAccountToken: false
  minReplicas: {{ $t.minReplicas }}
  maxReplicas: {{ $t.maxReplicas }}
  labels:
    {{- include "petr4.selectorLabels" (dict "ctx" $ctx "component" "transformer") | nindent 4 }}
    app.kubernetes.io/part-of: petr4-forecaster
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with include "petr4.podScheduling" $ctx }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- if $standard }}
  securityContext:
    {{- include "petr4.podSecurityContext" $ctx | nindent 4 }}
  {{- end }}
  {{- with include "petr4.imagePullSecrets" $ctx }}
  {{- . | nindent 2 }}
  {{- end }}
  containers:
    - name: kserve-container
      image: {{ include "petr4.image" (dict "ctx" $ctx "image" "serve") }}
      imagePullPolicy: {{ $v.images.pullPolicy }}
      command: ["python", "-m", "transformer"]
      args:
        - --model_name
        - {{ include "petr4.modelName" .model }}
        - --predictor_protocol
        - v2
        - --ticker
        - {{ .model.ticker | quote }}
        - --source
        - {{ $t.source }}
        - --calendar
        - {{ $t.calendar }}
        - --max-age-s
        - {{ $t.maxAgeSeconds | quote }}
        - --predictor_request_timeout_seconds
        - {{ $t.predictorTimeoutSeconds | quote }}
        - --refetch-interval-s
        - {{ $t.refetchIntervalSeconds | quote }}
        - --fetch-retries
        - {{ $t.fetchRetries | quote }}
        {{- range $t.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - {name: PROMETHEUS_MULTIPROC_DIR, value: /tmp/metrics}
        - {name: HOME, value: /tmp}
        {{- with $v.predictor.apiToken.existingSecret }}
        # The predictor's token (predictor.apiToken): required from clients, sent to the predictor.
        - name: FORECASTER_TRANSFORMER_API_TOKEN
          valueFrom:
            secretKeyRef: {name: {{ . }}, key: {{ $v.predictor.apiToken.key }}}
        {{- end }}
        {{- with (include "petr4.extraEnv" $ctx) }}{{ . | trim | nindent 8 }}{{ end }}
      {{- with include "petr4.extraEnvFrom" $ctx }}
      {{- . | nindent 6 }}
      {{- end }}
      ports:
        - {name: http1, containerPort: 8080, protocol: TCP}
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
        {{- toYaml $t.resources | nindent 8 }}
      securityContext:
        {{- include "petr4.containerSecurityContext" $ctx | nindent 8 }}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
  volumes:
    {{- include "petr4.tmpVolume" (dict) | nindent 4 }}
{{- end }}
{{- end }}
