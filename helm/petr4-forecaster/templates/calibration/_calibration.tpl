{{/* Online calibration (values `calibration`; docs/architecture.md, "The served distribution"): one
ConfigMap per model, created by the chart without `data`, written by the model's monitor through the
Kubernetes API (key `<model>.json`), mounted read-only by the model's predictors. */}}

{{/* "true" when the monitors keep the states and the predictors read them. */}}
{{- define "petr4.calibrationEnabled" -}}
{{- if and .Values.calibration.enabled .Values.monitor.enabled }}true{{ end }}
{{- end }}

{{/* The ConfigMap name with `{model}` where the model's name goes: the monitors'
--calibration-configmap (a universe's monitor writes one per ticker). */}}
{{- define "petr4.calibrationConfigMapPattern" -}}
{{- printf "%s-{model}" (include "petr4.componentName" (dict "ctx" . "component" "calibration")) }}
{{- end }}

{{/* One model's ConfigMap. (dict "ctx" $ "name" <model name>) */}}
{{- define "petr4.calibrationConfigMap" -}}
{{- include "petr4.calibrationConfigMapPattern" .ctx | replace "{model}" .name }}
{{- end }}

{{/* Every model of the release, `models` then the universe's (JSON list of names). */}}
{{- define "petr4.calibrationModels" -}}
{{- $names := list }}
{{- range .Values.models }}
{{- $names = append $names (include "petr4.modelName" .) }}
{{- end }}
{{- if .Values.universe.enabled }}
{{- $names = concat $names (include "petr4.universeModels" . | fromJsonArray) }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/* A predictor pod's volume: the ConfigMap of each model it serves, projected into one directory
(`<model>.json` each), optional (a model whose monitor has not written yet serves its bundle's
calibration). Nothing when calibration is off. (dict "ctx" $ "names" (list <model name> ...)) */}}
{{- define "petr4.calibrationVolume" -}}
{{- if include "petr4.calibrationEnabled" .ctx }}
- name: calibration
  projected:
    sources:
      {{- range .names }}
      - configMap:
          name: {{ include "petr4.calibrationConfigMap" (dict "ctx" $.ctx "name" .) }}
          optional: true
      {{- end }}
{{- end }}
{{- end }}

{{/* Where the predictor container mounts it, and the flags that read it. */}}
{{- define "petr4.calibrationMount" -}}
{{- if include "petr4.calibrationEnabled" . }}
- {name: calibration, mountPath: /etc/forecaster/calibration, readOnly: true}
{{- end }}
{{- end }}

{{- define "petr4.calibrationArgs" -}}
{{- if include "petr4.calibrationEnabled" . }}
- --calibration-dir
- /etc/forecaster/calibration
- --calibration-max-age-s
- {{ .Values.calibration.maxAgeSeconds | quote }}
- --calibration-poll-s
- {{ .Values.calibration.pollSeconds | quote }}
{{- end }}
{{- end }}

{{/* The ServiceAccount token, CA and namespace (the files automounting would give), projected for
a container that calls the API (the monitor with calibration; the training Jobs' pin). */}}
{{- define "petr4.kubeApiAccessVolume" -}}
- name: kube-api-access
  projected:
    defaultMode: 420  # 0644, as the automatic mount
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3600
      - configMap:
          name: kube-root-ca.crt
          items:
            - {key: ca.crt, path: ca.crt}
      - downwardAPI:
          items:
            - path: namespace
              fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}
{{- end }}
