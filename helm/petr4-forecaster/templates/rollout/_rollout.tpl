{{/* Promotion -> KServe rollout (delivery=storageUri): every training Job of a model ends with
`python -m rollout pin`, which pins the InferenceService's storageUri to the version the alias
points at now (`models:/<name>/<version>`): a promotion is a new KServe revision, a refused model
changes nothing (same URI, no patch). The training container runs as the last init container, so
the pin runs only after training exited 0; the ServiceAccount token is projected into the pin
container only, never into training. docs/deploy.md "Promotion and rollout". */}}

{{/* "true" when training Jobs may end with a pin: storageUri delivery, KServe and training on. */}}
{{- define "petr4.rolloutEnabled" -}}
{{- $v := .Values }}
{{- if and $v.rollout.enabled $v.kserve.enabled $v.training.enabled (eq $v.predictor.delivery "storageUri") }}true{{ end }}
{{- end }}

{{/* The pin flags of one model, empty when nothing is to be pinned by the Job. The stable
predictor follows the alias unless `models[].version` pins it in Git (then Git is in charge);
the canary follows `canary.alias` unless `canary.version` pins it. Knative mode has one predictor
spec, so with a canary on the Job pins the canary only (pinning the stable model would end the
canary: that is the manual promotion, `python -m rollout pin --alias champion`).
(dict "ctx" $ "model" $model) */}}
{{- define "petr4.rolloutArgs" -}}
{{- $v := .ctx.Values }}
{{- if include "petr4.rolloutEnabled" .ctx }}
{{- $canary := default (dict) .model.canary }}
{{- $standard := eq $v.kserve.deploymentMode "Standard" }}
{{- if and (not .model.version) (or $standard (not $canary.enabled)) }}
- --alias
- {{ $v.predictor.alias }}
{{- end }}
{{- if and $canary.enabled (not $canary.version) }}
- --canary-alias
- {{ default "challenger" $canary.alias }}
{{- if not $standard }}
- --traffic-percent
- {{ default 10 $canary.trafficPercent | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* The InferenceServices the Jobs pin (the Role's resourceNames), as a JSON list. */}}
{{- define "petr4.rolloutTargets" -}}
{{- $names := list }}
{{- range $model := .Values.models }}
{{- if include "petr4.rolloutArgs" (dict "ctx" $ "model" $model) }}
{{- $names = append $names (include "petr4.modelName" $model) }}
{{- end }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/* The last container of a training pod. (dict "ctx" $ "model" $model) */}}
{{- define "petr4.rolloutContainer" -}}
{{- $ctx := .ctx }}
{{- $v := $ctx.Values -}}
- name: rollout
  image: {{ include "petr4.image" (dict "ctx" $ctx "image" "serve") }}
  imagePullPolicy: {{ $v.images.pullPolicy }}
  command: ["python", "-m", "rollout", "pin"]
  args:
    - --model
    - {{ include "petr4.modelName" .model }}
    {{- include "petr4.rolloutArgs" . | nindent 4 }}
    - --tracking-uri
    - $(FORECASTER_TRACKING_URI)
  env:
    - name: FORECASTER_ROLLOUT_NAMESPACE
      valueFrom:
        fieldRef: {fieldPath: metadata.namespace}
    - {name: HOME, value: /tmp}
    {{- include "petr4.mlflowClientEnv" $ctx | nindent 4 }}
    {{- with (include "petr4.extraEnv" $ctx) }}{{ . | trim | nindent 4 }}{{ end }}
  {{- with (include "petr4.extraEnvFrom" $ctx) }}{{ . | trim | nindent 2 }}{{ end }}
  resources:
    {{- toYaml $v.rollout.resources | nindent 4 }}
  securityContext:
    {{- include "petr4.containerSecurityContext" $ctx | nindent 4 }}
  volumeMounts:
    - {name: tmp, mountPath: /tmp}
    - name: kube-api-access
      mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      readOnly: true
{{- end }}

{{/* The ServiceAccount token, CA and namespace (the files automounting would give), projected
for the rollout container only. */}}
{{- define "petr4.rolloutVolume" -}}
{{ include "petr4.kubeApiAccessVolume" . }}
{{- end }}

{{/* A failed pin fails the Job at once: a pod retry would retrain, and the promotion already
stands in the registry (the pin's log line names the command that converges). Jobs' spec. */}}
{{- define "petr4.rolloutFailurePolicy" -}}
{{- if include "petr4.rolloutArgs" . }}
podFailurePolicy:
  rules:
    - action: FailJob
      onExitCodes:
        containerName: rollout
        operator: NotIn
        values: [0]
{{- end }}
{{- end }}

{{/* Egress rule of the training pods' NetworkPolicy for the pin: the Kubernetes API server (443 on
the `kubernetes` Service, 6443 on its endpoints after DNAT); nothing when no Job pins. */}}
{{- define "petr4.rolloutEgress" -}}
{{- if include "petr4.rolloutTargets" . | fromJsonArray }}
# python -m rollout pin -> the Kubernetes API server (templates/rollout/)
- to:
    - ipBlock:
        cidr: {{ .Values.rollout.apiServerEgress.cidr }}
  ports:
    {{- range .Values.rollout.apiServerEgress.ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end }}
{{- end }}
