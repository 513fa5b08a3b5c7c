{{/* Names: `pagemill` for a release named pagemill (as deploy/kustomize names things), else <release>-pagemill. */}}
{{- define "pagemill.fullname" -}}
{{- if contains "pagemill" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-pagemill" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pagemill.secretName" -}}
{{- .Values.secrets.name | default (include "pagemill.fullname" .) -}}
{{- end -}}

{{- define "pagemill.kedaSecretName" -}}
{{- .Values.secrets.kedaRedis.name | default (printf "%s-keda-redis" (include "pagemill.fullname" .)) -}}
{{- end -}}

{{- define "pagemill.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Labels of an object: the selector labels, part-of, and Helm's own. Argument: (dict "ctx" $ "component" "api"); component may be "". */}}
{{- define "pagemill.labels" -}}
{{ include "pagemill.selectorLabels" . }}
app.kubernetes.io/part-of: pagemill
{{ include "pagemill.helmLabels" .ctx }}
{{- end -}}

{{/* What Helm adds to deploy/kustomize's labels. Argument: the root context. */}}
{{- define "pagemill.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Labels of a pod template: the selector labels and part-of. */}}
{{- define "pagemill.podLabels" -}}
{{ include "pagemill.selectorLabels" . }}
app.kubernetes.io/part-of: pagemill
{{- end -}}

{{- define "pagemill.selectorLabels" -}}
app.kubernetes.io/name: pagemill
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/* Pagemill's image runs as its `pagemill` user (uid 10001). */}}
{{- define "pagemill.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "pagemill.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{/* Every Pagemill process reads the ConfigMap and the Secret of credentials. */}}
{{- define "pagemill.envFrom" -}}
- configMapRef: {name: {{ include "pagemill.fullname" . }}-config}
- secretRef: {name: {{ include "pagemill.secretName" . }}}
{{- end -}}

{{/* A pod runs again when its settings change. */}}
{{- define "pagemill.configChecksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secrets: {{ include (print .Template.BasePath "/secrets.yaml") . | sha256sum }}
{{- end -}}

{{/* Pod settings shared by every Pagemill pod. */}}
{{- define "pagemill.podBasics" -}}
serviceAccountName: {{ include "pagemill.fullname" . }}
automountServiceAccountToken: false
# Services named pagemill-* would inject PAGEMILL_*_PORT variables: Pagemill's own settings prefix.
enableServiceLinks: false
{{- end -}}

{{/* The worker probes: the metrics port opens when Celery is ready. Argument: (dict "period" 5 "failures" 60). */}}
{{- define "pagemill.workerProbes" -}}
startupProbe:
  tcpSocket: {port: metrics}
  periodSeconds: {{ .period }}
  failureThreshold: {{ .failures }}
readinessProbe:
  httpGet: {path: /metrics, port: metrics}
  periodSeconds: 15
  timeoutSeconds: 5
livenessProbe:
  tcpSocket: {port: metrics}
  periodSeconds: 30
  failureThreshold: 4
{{- end -}}

{{/* A KEDA ScaledObject on a queue's four Redis lists (kombu's priority steps), added up by the formula.
Argument: (dict "ctx" $ "component" "worker-cpu" "queue" "cpu" "min" 1 "max" 20 "target" 8 "cooldown" 300 "window" 300 "pods" 2 "podsPeriod" 60) */}}
{{- define "pagemill.scaledObject" -}}
{{- $fullname := include "pagemill.fullname" .ctx -}}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ $fullname }}-{{ .component }}
  labels:
    {{- include "pagemill.labels" . | nindent 4 }}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: {{ $fullname }}-{{ .component }}}
  minReplicaCount: {{ .min }}
  maxReplicaCount: {{ .max }}
  pollingInterval: {{ .ctx.Values.keda.pollingInterval }}
  cooldownPeriod: {{ .cooldown }}
  advanced:
    scalingModifiers:
      formula: "prio0 + prio3 + prio6 + prio9"
      target: {{ .target | quote }}
      metricType: AverageValue
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: {{ .window }}
          policies:
            - {type: Pods, value: {{ .pods }}, periodSeconds: {{ .podsPeriod }}}
  triggers:
    {{- range $step := list 0 3 6 9 }}
    - type: redis
      name: prio{{ $step }}
      authenticationRef: {name: {{ $fullname }}-redis}
      metadata:
        listName: {{ if eq $step 0 }}{{ $.queue | quote }}{{ else }}"{{ $.queue }}\x06\x16{{ $step }}"{{ end }}
        listLength: {{ $.target | quote }}
        databaseIndex: {{ $.ctx.Values.keda.redisDatabaseIndex | quote }}
    {{- end }}
{{- end -}}

{{/* A PodDisruptionBudget of one pod at a time. Argument: (dict "ctx" $ "component" "api") */}}
{{- define "pagemill.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "pagemill.fullname" .ctx }}-{{ .component }}
  labels:
    {{- include "pagemill.labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "pagemill.selectorLabels" . | nindent 6 }}
{{- end -}}
