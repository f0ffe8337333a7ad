{{/* The universe (values `universe`): a list of tickers in a few objects. Its shards, object names
and model names, used by training, predictor, monitor, retrainer, monitoring and tests alike, and
the checks that refuse what would collide. */}}

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

{{/* Name of shard <index>'s InferenceService. (dict "ctx" $ "index" 0) */}}
{{- define "petr4.universeShardName" -}}
{{- printf "%s-%d" .ctx.Values.universe.name (int .index) }}
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
