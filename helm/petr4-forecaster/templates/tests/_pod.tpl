{{/* A `helm test` Pod: one v2 inference of `model` through InferenceService `isvc`.
(dict "ctx" $ "name" <pod> "isvc" <InferenceService> "model" <model> "label" (list <key> <value>)) */}}
{{- define "petr4.helmTestPod" -}}
{{- $ctx := .ctx -}}
# `helm test`: waits until {{ .model }} is ready on {{ .isvc }}, then sends one v2 inference through
# that Service and checks the answer (a finite forecast inside its 80% interval).
apiVersion: v1
kind: Pod
metadata:
  name: {{ .name }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "petr4.labels" (dict "ctx" $ctx "component" "test") | nindent 4 }}
    {{ index .label 0 }}: {{ index .label 1 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
    checkov.io/skip1: CKV_K8S_8=a one-shot helm test Pod has nothing long-running to probe
    checkov.io/skip2: CKV_K8S_9=a one-shot helm test Pod has nothing long-running to probe
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext:
    {{- include "petr4.podSecurityContext" $ctx | nindent 4 }}
  {{- include "petr4.imagePullSecrets" $ctx | indent 2 }}
  {{- with (include "petr4.podScheduling" $ctx) }}{{ . | trim | nindent 2 }}{{ end }}
  containers:
    - name: v2-inference
      image: {{ include "petr4.image" (dict "ctx" $ctx "image" "serve") }}
      imagePullPolicy: {{ $ctx.Values.images.pullPolicy }}
      command: ["python", "-c"]
      args:
        - |
          {{- $ctx.Files.Get "files/helm_test.py" | nindent 10 }}
      env:
        # The predictor Service KServe creates (Standard: Deployment's Service; Knative: the route).
        - {name: FORECASTER_TEST_URL, value: {{ printf "http://%s-predictor.%s.svc.cluster.local" .isvc $ctx.Release.Namespace | quote }}}
        - {name: FORECASTER_TEST_MODEL, value: {{ .model }}}
        - {name: FORECASTER_TEST_WINDOW, value: {{ $ctx.Values.helmTest.window | quote }}}
        - {name: FORECASTER_TEST_TIMEOUT_S, value: {{ $ctx.Values.helmTest.timeoutSeconds | quote }}}
        {{- with $ctx.Values.predictor.apiToken.existingSecret }}
        - name: FORECASTER_TEST_TOKEN
          valueFrom:
            secretKeyRef: {name: {{ . }}, key: {{ $ctx.Values.predictor.apiToken.key }}}
        {{- end }}
      resources:
        requests: {cpu: 10m, memory: 64Mi}
        limits: {cpu: 200m, memory: 128Mi}
      securityContext:
        {{- include "petr4.containerSecurityContext" $ctx | nindent 8 }}
{{- end }}
