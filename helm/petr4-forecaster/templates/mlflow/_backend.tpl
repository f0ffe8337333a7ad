{{/* The in-cluster MLflow's stores: the backend (SQLite on the PVC, or PostgreSQL from an existing
Secret), where artifacts go (the PVC or an object store), and the checks that keep them coherent.
Used by deployment.yaml, pvc.yaml, migration.yaml and networkpolicy.yaml. */}}

{{/* "true" when the backend store is PostgreSQL; fails without its Secret, or with more than one
replica on SQLite or on the volume. */}}
{{- define "petr4.mlflowOnPostgresql" -}}
{{- $m := .Values.mlflow }}
{{- if eq $m.backend.type "postgresql" }}
{{- if not $m.backend.postgresql.existingSecret }}
{{- fail "mlflow.backend.postgresql.existingSecret is required with mlflow.backend.type=postgresql: the name of an existing Secret holding the SQLAlchemy URI (postgresql://USER:PASSWORD@HOST:5432/DB) under mlflow.backend.postgresql.uriKey; the URI itself never goes in values (docs/deploy.md, MLflow on PostgreSQL)" }}
{{- end }}
{{- end }}
{{- if and (gt (int $m.replicas) 1) (or (ne $m.backend.type "postgresql") (not $m.artifacts.destination)) }}
{{- fail (printf "mlflow.replicas=%v needs mlflow.backend.type=postgresql and an object-store mlflow.artifacts.destination: SQLite and the artifacts volume (ReadWriteOnce) belong to one pod" $m.replicas) }}
{{- end }}
{{- if eq $m.backend.type "postgresql" }}true{{ end }}
{{- end }}

{{/* "true" when the pod mounts the PVC: SQLite lives there, or the artifacts do. */}}
{{- define "petr4.mlflowNeedsVolume" -}}
{{- if or (ne .Values.mlflow.backend.type "postgresql") (not .Values.mlflow.artifacts.destination) }}true{{ end }}
{{- end }}

{{/* The backend store URI, from the Secret (the variable `mlflow server` reads). */}}
{{- define "petr4.mlflowBackendEnv" -}}
- name: MLFLOW_BACKEND_STORE_URI
  valueFrom:
    secretKeyRef:
      name: {{ .Values.mlflow.backend.postgresql.existingSecret }}
      key: {{ .Values.mlflow.backend.postgresql.uriKey }}
{{- end }}

{{/* The wait-for-schema init container's program (python -c PROGRAM SECONDS): polls the database's
Alembic revision until it is the head this image's MLflow ships (what `mlflow server` itself
verifies), every 5 s for at most SECONDS, then exits 1 and the kubelet retries. It never migrates. */}}
{{- define "petr4.mlflowWaitForSchema" -}}
import os, sys, time
from mlflow.store.db.utils import _get_latest_schema_revision, _get_schema_version, create_sqlalchemy_engine
engine = create_sqlalchemy_engine(os.environ["MLFLOW_BACKEND_STORE_URI"])
wanted, deadline = _get_latest_schema_revision(), time.monotonic() + float(sys.argv[1])
while True:
    try:
        found = _get_schema_version(engine)
    except Exception as exc:
        found = f"unreadable ({type(exc).__name__})"
    if found == wanted:
        print(f"database schema {found}: the one this MLflow expects")
        sys.exit(0)
    if time.monotonic() > deadline:
        sys.exit(f"database schema {found}, this MLflow expects {wanted}: the migration Job (mlflow db upgrade) has not run")
    print(f"database schema {found}, this MLflow expects {wanted}: waiting for the migration Job", flush=True)
    time.sleep(5)
{{- end }}

{{/* The read-only port's nginx image: its own registry (NGINX's official unprivileged image). */}}
{{- define "petr4.readOnlyGuardImage" -}}
{{- $img := .Values.images.readOnlyGuard }}
{{- $repo := printf "%s/%s" (trimSuffix "/" $img.registry) $img.repository }}
{{- if $img.digest }}
{{- printf "%s@%s" $repo $img.digest }}
{{- else }}
{{- printf "%s:%s" $repo $img.tag }}
{{- end }}
{{- end }}

{{/* NetworkPolicy egress rule to peers on a port (any destination on it when peers is empty).
(dict "peers" list "port" int) */}}
{{- define "petr4.egressPeers" -}}
- ports:
    - {protocol: TCP, port: {{ .port }}}
  {{- with .peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
