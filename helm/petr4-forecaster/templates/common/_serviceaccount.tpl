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
