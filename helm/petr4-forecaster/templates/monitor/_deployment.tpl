{{/* A realized-accuracy monitor's Deployment: one model (templates/monitor/deployment.yaml) or a
whole universe (FORECASTER_MONITOR_UNIVERSE). (dict "ctx" $ "name" <object> "comment" "# ..."
"label" (list <key> <value>) "args" <rendered args list> "env" <rendered extra env, or ""> "resources" {...}) */}}
{{- define "petr4.monitorDeployment" -}}
{{- $ctx := .ctx }}
{{- $key := index .label 0 }}
{{- $value := index .label 1 }}
{{ .comment }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "petr4.labels" (dict "ctx" $ctx "component" "monitor") | nindent 4 }}
    {{ $key }}: {{ $value }}
spec:
  replicas: 1  # one scorer per model: two would export the same series twice
  strategy:
    type: Recreate
  selector:
    matchLabels:
      {{- include "petr4.selectorLabels" (dict "ctx" $ctx "component" "monitor") | nindent 6 }}
      {{ $key }}: {{ $value }}
  template:
    metadata:
      labels:
        {{- include "petr4.labels" (dict "ctx" $ctx "component" "monitor") | nindent 8 }}
        {{ $key }}: {{ $value }}
        {{- with $ctx.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $ctx.Values.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "petr4.componentName" (dict "ctx" $ctx "component" "monitor") }}
      # With calibration the token is projected explicitly (the files automounting would give) for
      # the calibration ConfigMaps (its Role: get and patch on those names only).
      automountServiceAccountToken: false
      # No FORECASTER_MONITOR_* variables from Service links (a release named "forecaster"
      # would otherwise inject FORECASTER_MONITOR_..._PORT into the settings' namespace).
      enableServiceLinks: false
      securityContext:
        {{- include "petr4.podSecurityContext" $ctx | nindent 8 }}
      {{- with (include "petr4.podScheduling" $ctx) }}{{ . | trim | nindent 6 }}{{ end }}
      {{- include "petr4.imagePullSecrets" $ctx | indent 6 }}
      containers:
        - name: monitor
          image: {{ include "petr4.image" (dict "ctx" $ctx "image" "monitor") }}
          imagePullPolicy: {{ $ctx.Values.images.pullPolicy }}
          command: ["python", "-m", "monitor"]
          args:
            {{- .args | nindent 12 }}
          env:
            - {name: HOME, value: /tmp}
            - {name: MPLCONFIGDIR, value: /tmp/matplotlib}
            {{- with .env }}{{ . | nindent 12 }}{{ end }}
            {{- if include "petr4.calibrationEnabled" $ctx }}
            - name: FORECASTER_MONITOR_NAMESPACE
              valueFrom:
                fieldRef: {fieldPath: metadata.namespace}
            {{- end }}
            {{- include "petr4.mlflowReaderEnv" $ctx | nindent 12 }}
            {{- with (include "petr4.extraEnv" $ctx) }}{{ . | trim | nindent 12 }}{{ end }}
          {{- with (include "petr4.extraEnvFrom" $ctx) }}{{ . | trim | nindent 10 }}{{ end }}
          ports:
            - {name: metrics, containerPort: 9090, protocol: TCP}
          # /metrics answers from the start (before the first evaluation, which may take minutes
          # or fail while Yahoo or MLflow is down: that is an alert, not a restart).
          livenessProbe:
            httpGet: {path: /metrics, port: metrics}
            periodSeconds: 30
            timeoutSeconds: 5
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /metrics, port: metrics}
            periodSeconds: 15
            timeoutSeconds: 5
          resources:
            {{- toYaml .resources | nindent 12 }}
          securityContext:
            {{- include "petr4.containerSecurityContext" $ctx | nindent 12 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            {{- if include "petr4.calibrationEnabled" $ctx }}
            - name: kube-api-access
              mountPath: /var/run/secrets/kubernetes.io/serviceaccount
              readOnly: true
            {{- end }}
      volumes:
        {{- include "petr4.tmpVolume" (dict) | nindent 8 }}
        {{- if include "petr4.calibrationEnabled" $ctx }}
        {{- include "petr4.kubeApiAccessVolume" $ctx | nindent 8 }}
        {{- end }}
{{- end }}

{{/* Arguments of a monitor: one model's (with "model"), or a universe's (its tickers and alias come
from FORECASTER_MONITOR_UNIVERSE / _ALIAS). (dict "ctx" $ ["model" $model]) */}}
{{- define "petr4.monitorArgs" -}}
{{- $v := .ctx.Values }}
{{- with .model }}
{{- $name := include "petr4.modelName" . -}}
- --model-source
- models:/{{ $name }}@{{ $v.predictor.alias }}
- --tracking-uri
- $(FORECASTER_TRACKING_URI)
# The `model` label: the predictor's --model_name, so it joins forecaster_model_info.
- --model-name
- {{ $name }}
- --source
- yfinance
- --ticker
- {{ .ticker | quote }}
{{- else -}}
- --tracking-uri
- $(FORECASTER_TRACKING_URI)
- --source
- yfinance
{{- end }}
- --sessions
- {{ $v.monitor.sessions | quote }}
- --interval-s
- {{ $v.monitor.intervalSeconds | quote }}
- --port
- "9090"
- --calendar
- {{ $v.monitor.calendar | quote }}
{{- if include "petr4.calibrationEnabled" .ctx }}
- --calibration-configmap
- {{ include "petr4.calibrationConfigMapPattern" .ctx }}
{{- end }}
{{- range $v.monitor.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
