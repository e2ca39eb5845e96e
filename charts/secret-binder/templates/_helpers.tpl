{{/* The base name of every object. */}}
{{- define "sb.fullname" -}}
{{- default "secret-binder" .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "sb.labels" -}}
app.kubernetes.io/name: secret-binder
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "sb.selector" -}}
app.kubernetes.io/name: secret-binder
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sb.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{- define "sb.controllerSA" -}}{{ include "sb.fullname" . }}-controller{{- end -}}
{{- define "sb.nodeSA" -}}{{ include "sb.fullname" . }}-node{{- end -}}
{{- define "sb.brokerService" -}}{{ include "sb.fullname" . }}-broker{{- end -}}
{{- define "sb.webhookService" -}}{{ include "sb.fullname" . }}-webhook{{- end -}}
{{- define "sb.webhookName" -}}{{ include "sb.fullname" . }}-webhook{{- end -}}
{{- define "sb.brokerTlsSecret" -}}{{ default (printf "%s-broker-tls" (include "sb.fullname" .)) .Values.brokerTls.existingSecret }}{{- end -}}
{{- define "sb.webhookTlsSecret" -}}{{ include "sb.fullname" . }}-webhook-tls{{- end -}}
{{- define "sb.hmacSecret" -}}{{ default (printf "%s-content-hmac" (include "sb.fullname" .)) .Values.hmacKey.existingSecret }}{{- end -}}
{{/* The broker's URL as the node plugins (and the release check) reach it. */}}
{{- define "sb.brokerUrl" -}}{{ default (printf "https://%s.%s.svc:443" (include "sb.brokerService" .) .Release.Namespace) .Values.nodePlugin.brokerUrl }}{{- end -}}
{{- define "sb.leaseName" -}}{{ include "sb.fullname" . }}-controller{{- end -}}

{{/* DNS names of a Service: name, name.ns, name.ns.svc, name.ns.svc.cluster.local */}}
{{- define "sb.serviceDnsNames" -}}
{{- $name := index . 0 -}}{{- $ns := index . 1 -}}
{{ $name }}.{{ $ns }}.svc,{{ $name }}.{{ $ns }}.svc.cluster.local
{{- end -}}

{{/* The webhook's namespaceSelector: never the system namespaces nor the release namespace (ADR 0091). */}}
{{- define "sb.webhookNamespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values:
        {{- range .Values.webhook.excludedNamespaces }}
        - {{ . }}
        {{- end }}
        - {{ .Release.Namespace }}
    {{- if .Values.watchNamespaces }}
    - key: kubernetes.io/metadata.name
      operator: In
      values:
        {{- range .Values.watchNamespaces }}
        - {{ . }}
        {{- end }}
    {{- end }}
{{- end -}}


{{/* Only opted-in pods reach the webhook: the inject label or a CSI volume of our driver (ADR 0094). */}}
{{- define "sb.webhookMatchConditions" -}}
matchConditions:
  - name: pod-uses-secretbinder
    expression: >-
      (has(object.metadata.labels) && 'secretbinder.dev/inject' in object.metadata.labels && object.metadata.labels['secretbinder.dev/inject'] == 'true') || (has(object.spec.volumes) && object.spec.volumes.exists(v, has(v.csi) && v.csi.driver == 'secretbinder.dev'))
{{- end -}}
