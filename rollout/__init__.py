"""`python -m rollout`: pin an InferenceService's storageUri to a registry version, so that a
promotion (the gate moving `champion`) or a canary (`challenger`) becomes a KServe rollout.

Torch-free (serving image): MLflow's client resolves the alias, the retrainer's plain-HTTP
Kubernetes client patches the InferenceService with the pod's ServiceAccount token.
"""
