{{/* The Deployment of base/worker-ingest.yaml, worker-cpu.yaml and worker-webhooks.yaml.
Argument: (dict "ctx" $ "component" "worker-cpu" "queue" "cpu" "values" $.Values.workers.cpu "internet" false "webhooks" false) */}}
{{- define "pagemill.workerDeployment" -}}
{{- $ctx := .ctx -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "pagemill.fullname" $ctx }}-{{ .component }}
  labels:
    {{- include "pagemill.labels" . | nindent 4 }}
spec:
  {{- if .webhooks }}
  replicas: {{ .values.replicas }}
  {{- else }}
  # No `replicas`: the ScaledObject's HPA owns it.
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "pagemill.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  template:
    metadata:
      labels:
        {{- include "pagemill.podLabels" . | nindent 8 }}
        {{- if .internet }}
        pagemill.io/internet-egress: "true"
        {{- end }}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: "9100"
        prometheus.io/path: /metrics
        {{- include "pagemill.configChecksums" $ctx | nindent 8 }}
    spec:
      {{- include "pagemill.podBasics" $ctx | nindent 6 }}
      {{- if .webhooks }}
      # A delivery lasts at most webhooks.timeout_s (15 s); the warm shutdown worker.shutdown_timeout_s.
      terminationGracePeriodSeconds: 60
      {{- else }}
      # Above worker.task_time_limit_s: a pod scaled down finishes every page it started.
      terminationGracePeriodSeconds: {{ $ctx.Values.workers.terminationGracePeriodSeconds }}
      {{- end }}
      securityContext:
        {{- include "pagemill.podSecurityContext" $ctx | nindent 8 }}
      containers:
        - name: worker
          image: {{ include "pagemill.image" $ctx }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          command: ["pagemill", "worker", "--queues", {{ .queue | quote }}]
          envFrom:
            {{- include "pagemill.envFrom" $ctx | nindent 12 }}
          env:
            {{- if not .webhooks }}
            - {name: PAGEMILL_WORKER__CONCURRENCY, value: {{ .values.concurrency | quote }}}
            {{- end }}
            - {name: PAGEMILL_WORKER__METRICS_PORT, value: "9100"}
            {{- if not .webhooks }}
            - {name: PAGEMILL_WORKER__SHUTDOWN_TIMEOUT_S, value: {{ $ctx.Values.workers.shutdownTimeoutSeconds | quote }}}
            {{- end }}
          ports:
            - {name: metrics, containerPort: 9100, protocol: TCP}
          {{- include "pagemill.workerProbes" (dict "period" 5 "failures" 60) | nindent 10 }}
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          securityContext:
            {{- include "pagemill.containerSecurityContext" $ctx | nindent 12 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
      volumes:
        - name: tmp
          emptyDir: {sizeLimit: {{ .values.tmpSizeLimit }}}
{{- end -}}
