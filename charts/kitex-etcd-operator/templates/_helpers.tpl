{{/* The objects' name: fixed (kitex-etcd-operator) unless nameOverride. */}}
{{- define "keo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "keo.serviceAccountName" -}}
{{- include "keo.name" . -}}
{{- end -}}

{{- define "keo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keo.name" . }}
{{- end -}}

{{- define "keo.labels" -}}
{{ include "keo.selectorLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "keo.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{- define "keo.healthPort" -}}
{{- default 8080 .Values.config.healthPort -}}
{{- end -}}

{{/*
config key -> the environment variable of its `run` flag. leaderElect,
leaderElectionNamespace and leaderElectionId are flags (see the Deployment).
*/}}
{{- define "keo.envVars" -}}
etcdEndpoints: KITEX_ETCD_ENDPOINTS
etcdUsername: KITEX_ETCD_USERNAME
etcdPasswordFile: KITEX_ETCD_PASSWORD_FILE
etcdCa: KITEX_ETCD_CA
etcdCert: KITEX_ETCD_CERT
etcdKey: KITEX_ETCD_KEY
etcdSecret: KITEX_ETCD_SECRET
etcdDialTimeout: KITEX_ETCD_DIAL_TIMEOUT
etcdMaxResponseSize: KITEX_ETCD_MAX_RESPONSE_SIZE
prefix: KITEX_ETCD_PREFIX
kubeconfig: KUBECONFIG
leaseTtl: KITEX_ETCD_REGISTRY_LEASE_TTL
maxAttemptTimes: KITEX_ETCD_MAX_ATTEMPT_TIMES
observeDelay: KITEX_ETCD_OBSERVE_DELAY
retryDelay: KITEX_ETCD_RETRY_DELAY
clusterId: KITEX_ETCD_CLUSTER_ID
ownerPrefix: KITEX_ETCD_OWNER_PREFIX
namespaces: KITEX_ETCD_NAMESPACES
policy: KITEX_ETCD_POLICY
dryRun: KITEX_ETCD_DRY_RUN
maxDeletes: KITEX_ETCD_MAX_DELETES
resyncPeriod: KITEX_ETCD_RESYNC_PERIOD
gcPatience: KITEX_ETCD_GC_PATIENCE
metricsMaxServices: KITEX_ETCD_METRICS_MAX_SERVICES
healthPort: KITEX_ETCD_HEALTH_PORT
operatorNamespace: KITEX_ETCD_OPERATOR_NAMESPACE
allowCustomEndpoints: KITEX_ETCD_ALLOW_CUSTOM_ENDPOINTS
serviceSource: KITEX_ETCD_SERVICE_SOURCE
claimGrace: KITEX_ETCD_CLAIM_GRACE
logFormat: KITEX_ETCD_LOG_FORMAT
logLevel: KITEX_ETCD_LOG_LEVEL
{{- end -}}
