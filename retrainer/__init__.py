"""Alertmanager webhook receiver: a realized-MAE alert starts a retraining Job from the CronJob's
template (like `kubectl create job --from=cronjob/...`), one at a time. The training job's gate
decides whether the result is promoted; the predictor hot-reloads if it is."""
