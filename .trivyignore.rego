# trivy --ignore-policy for tests/deploy/test_scanners.py: findings accepted for ONE object only,
# matched by its name in trivy's message (every other object with the same finding still fails).
# Findings accepted for every object, each with its reason, are in .trivyignore.yaml.
package trivy

import rego.v1

default ignore := false

# KSV-0036 "Protecting Pod service account tokens", the retrainer Deployment only: it is the one
# component that calls the Kubernetes API (GET its CronJobs, list and create Jobs), so it needs
# the token. The pod keeps automountServiceAccountToken: false and projects the token explicitly
# into its one container (a one-hour, kubelet-rotated token), which trivy reports as a mount at
# /var/run/secrets/kubernetes.io/serviceaccount.
ignore if {
	input.ID == "KSV-0036"
	regex.match(`^Container of Deployment '[a-z0-9.-]*-retrainer' `, input.Message)
}

# KSV-0048 "Manage Kubernetes workloads and pods", the retrainer Role only: creating a Job from
# a retraining CronJob is the receiver's purpose. The Role is namespaced and grants exactly
# get on this release's retraining CronJobs (by resourceNames), list and create on Jobs;
# tests/deploy/test_chart.py pins those rules.
ignore if {
	input.ID == "KSV-0048"
	regex.match(`^Role '[a-z0-9.-]*-retrainer' `, input.Message)
}

# KSV-0036, the training Jobs and CronJobs only (templates/rollout/): their last container,
# `python -m rollout pin`, gets and patches this release's InferenceServices (by resourceNames) so
# that a promotion becomes a KServe rollout. As for the retrainer, the pod keeps
# automountServiceAccountToken: false and projects a one-hour token into that one container; the
# training container (an init container) never sees it. tests/deploy/test_rollout_chart.py pins that.
ignore if {
	input.ID == "KSV-0036"
	regex.match(`^Container of (CronJob '[a-z0-9.-]*-retrain-[a-z0-9.-]*'|Job '[a-z0-9.-]*-train-[a-z0-9.-]*') `, input.Message)
}

# KSV-0036, the monitor Deployments only (one per model, `<fullname>-monitor-<model>`, or a
# universe's): with calibration on, the monitor writes each model's online calibration state into
# that model's ConfigMap through the API. As for the retrainer, the pod keeps
# automountServiceAccountToken: false and projects a one-hour token into its one container.
ignore if {
	input.ID == "KSV-0036"
	regex.match(`^Container of Deployment '[a-z0-9.-]*-monitor-[a-z0-9.-]+' `, input.Message)
}

# KSV-0049 "Manage configmaps", the monitor Role only: patching its models' calibration
# ConfigMaps is how the state reaches the predictors. The Role grants exactly get and patch on
# this release's calibration ConfigMaps (by resourceNames; no create, list or delete);
# tests/deploy/test_calibration_chart.py pins those rules.
ignore if {
	input.ID == "KSV-0049"
	regex.match(`^Role '[a-z0-9.-]*-monitor' `, input.Message)
}
