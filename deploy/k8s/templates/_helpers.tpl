{{/* Names, labels and the pieces shared by the three service Deployments. */}}

{{- define "tickwire.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tickwire.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tickwire.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "tickwire.labels" -}}
helm.sh/chart: {{ include "tickwire.chart" . }}
app.kubernetes.io/name: {{ include "tickwire.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tickwire
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "ws-edge"). */}}
{{- define "tickwire.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tickwire.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tickwire.componentLabels" -}}
{{ include "tickwire.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Object name of one component: <fullname>-<component>. */}}
{{- define "tickwire.componentName" -}}
{{- printf "%s-%s" (include "tickwire.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tickwire.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tickwire.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tickwire.secretName" -}}
{{- default (printf "%s-secrets" (include "tickwire.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "tickwire.configName" -}}
{{- printf "%s-config" (include "tickwire.fullname" .) -}}
{{- end -}}

{{- define "tickwire.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.repositoryPrefix .component (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{/* The Redis URL when Redis runs in the release. */}}
{{- define "tickwire.redisInClusterUrl" -}}
{{- printf "redis://%s-redis:6379/0" (include "tickwire.fullname" .) -}}
{{- end -}}

{{- define "tickwire.kafkaBootstrapServers" -}}
{{- if .Values.kafka.enabled -}}
{{- printf "%s-kafka:9092" (include "tickwire.fullname" .) -}}
{{- else -}}
{{- required "kafka.bootstrapServers is required when kafka.enabled is false" .Values.kafka.bootstrapServers -}}
{{- end -}}
{{- end -}}

{{/* Checks that stop a broken configuration at render time. */}}
{{- define "tickwire.validate" -}}
{{- if and (not .Values.redis.enabled) (not .Values.redis.url) (not .Values.secrets.existingSecret) -}}
{{- fail "redis.url is required when redis.enabled is false (or put redis-url in secrets.existingSecret)" -}}
{{- end -}}
{{- if and .Values.redis.enabled (eq (.Values.redis.mode | default "standalone") "cluster") -}}
{{- fail "redis.mode=cluster needs an external Redis Cluster: set redis.enabled=false and redis.url" -}}
{{- end -}}
{{- $edge := .Values.edge -}}
{{- if le (int $edge.terminationGracePeriodSeconds) (add (int $edge.preStopSleepSeconds) (int $edge.drainSeconds)) -}}
{{- fail (printf "edge.terminationGracePeriodSeconds (%d) must exceed edge.preStopSleepSeconds + edge.drainSeconds (%d)" (int $edge.terminationGracePeriodSeconds) (add (int $edge.preStopSleepSeconds) (int $edge.drainSeconds))) -}}
{{- end -}}
{{- if and .Values.ingress.enabled (lt (int .Values.ingress.timeoutSeconds) 3600) -}}
{{- fail "ingress.timeoutSeconds must be at least 3600: idle WebSockets would be cut by the ingress" -}}
{{- end -}}
{{- end -}}

{{/*
A service Deployment. Call with (dict "root" $ "component" "ws-edge" "values" .Values.edge
"prefix" "TICKWIRE_EDGE" "env" (list ...extra env entries...)).
*/}}
{{- define "tickwire.deployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
{{- $ctx := dict "root" $root "component" .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "tickwire.componentName" $ctx }}
  labels:
    {{- include "tickwire.componentLabels" $ctx | nindent 4 }}
spec:
  {{- if not (and $v.autoscaling $v.autoscaling.enabled) }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  selector:
    matchLabels:
      {{- include "tickwire.selectorLabels" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "tickwire.selectorLabels" $ctx | nindent 8 }}
        app.kubernetes.io/part-of: tickwire
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "tickwire.serviceAccountName" $root }}
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "tickwire.image" $ctx | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          ports:
            - name: http
              containerPort: {{ $v.port }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "tickwire.configName" $root }}
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            - name: NODE_NAME
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            - name: {{ .prefix }}_HOST
              value: "0.0.0.0"
            - name: {{ .prefix }}_PORT
              value: {{ $v.port | quote }}
            {{- if not $root.Values.redis.enabled }}
            - name: TICKWIRE_REDIS_URL
              valueFrom:
                secretKeyRef:
                  name: {{ include "tickwire.secretName" $root }}
                  key: redis-url
            {{- end }}
            - name: OTEL_SERVICE_NAME
              value: {{ .serviceName | quote }}
            - name: OTEL_RESOURCE_ATTRIBUTES
              value: {{ printf "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),k8s.node.name=$(NODE_NAME)%s" (ternary (printf ",%s" $root.Values.otel.resourceAttributes) "" (ne $root.Values.otel.resourceAttributes "")) | quote }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
            {{- range $name, $value := $v.env }}
            - name: {{ $name }}
              value: {{ $value | toString | quote }}
            {{- end }}
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: {{ $v.probes.startup.periodSeconds }}
            timeoutSeconds: {{ $v.probes.startup.timeoutSeconds }}
            failureThreshold: {{ $v.probes.startup.failureThreshold }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: {{ $v.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ $v.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ $v.probes.liveness.failureThreshold }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: {{ $v.probes.readiness.periodSeconds }}
            timeoutSeconds: {{ $v.probes.readiness.timeoutSeconds }}
            failureThreshold: {{ $v.probes.readiness.failureThreshold }}
          {{- if gt (int $v.preStopSleepSeconds) 0 }}
          lifecycle:
            preStop:
              {{- if semverCompare ">=1.30-0" $root.Capabilities.KubeVersion.Version }}
              sleep:
                seconds: {{ $v.preStopSleepSeconds }}
              {{- else }}
              exec:
                command: ["sleep", {{ $v.preStopSleepSeconds | quote }}]
              {{- end }}
          {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $v.topologySpread }}
      {{- $selector := dict "matchLabels" (include "tickwire.selectorLabels" $ctx | fromYaml) }}
      {{- $constraints := list }}
      {{- range $v.topologySpread }}
      {{- $constraints = append $constraints (merge (dict "labelSelector" $selector) .) }}
      {{- end }}
      topologySpreadConstraints:
        {{- toYaml $constraints | nindent 8 }}
      {{- end }}
{{- end -}}

{{/* The ClusterIP Service of one component. */}}
{{- define "tickwire.service" -}}
{{- $ctx := dict "root" .root "component" .component -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "tickwire.componentName" $ctx }}
  labels:
    {{- include "tickwire.componentLabels" $ctx | nindent 4 }}
  {{- with .values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .values.service.type }}
  selector:
    {{- include "tickwire.selectorLabels" $ctx | nindent 4 }}
  ports:
    - name: http
      port: {{ .values.service.port }}
      targetPort: http
      protocol: TCP
{{- end -}}

{{/* The PodDisruptionBudget of one component. */}}
{{- define "tickwire.pdb" -}}
{{- $ctx := dict "root" .root "component" .component -}}
{{- if .values.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "tickwire.componentName" $ctx }}
  labels:
    {{- include "tickwire.componentLabels" $ctx | nindent 4 }}
spec:
  maxUnavailable: {{ .values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "tickwire.selectorLabels" $ctx | nindent 6 }}
{{- end }}
{{- end -}}
