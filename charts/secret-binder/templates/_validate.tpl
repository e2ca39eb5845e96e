{{/*
Rules over values that values.schema.json cannot express (relations between fields, ranges of
quantities, readable refusals). Each failure is one sentence naming the value and the rule, so
`helm install` / `helm template` stops before the release would break (ADR 0160). Rendered once,
from controller.yaml.
*/}}
{{- define "sb.validateValues" -}}
{{- $c := .Values.controller -}}

{{- if eq (toString .Values.image.tag) "latest" -}}
{{- fail "image.tag \"latest\" is not allowed: pin a version (or set image.digest) so every node runs the same code" -}}
{{- end -}}

{{- $le := $c.leaderElection -}}
{{- if and $le.enabled (ge (int $le.renewDeadlineSeconds) (int $le.leaseDurationSeconds)) -}}
{{- fail (printf "controller.leaderElection.renewDeadlineSeconds (%d) must be shorter than controller.leaderElection.leaseDurationSeconds (%d): the leader must renew before its lease can be taken" (int $le.renewDeadlineSeconds) (int $le.leaseDurationSeconds)) -}}
{{- end -}}
{{- if and $le.enabled (ge (int $le.retryPeriodSeconds) (int $le.renewDeadlineSeconds)) -}}
{{- fail (printf "controller.leaderElection.retryPeriodSeconds (%d) must be shorter than controller.leaderElection.renewDeadlineSeconds (%d): the leader needs more than one renewal attempt per deadline" (int $le.retryPeriodSeconds) (int $le.renewDeadlineSeconds)) -}}
{{- end -}}
{{- if and (not $le.enabled) (gt (int $c.replicas) 1) -}}
{{- fail (printf "controller.replicas is %d but controller.leaderElection.enabled is false: without leader election every replica would poll backends and restart workloads; set controller.replicas to 1 or enable leader election" (int $c.replicas)) -}}
{{- end -}}

{{- if and .Values.agent.enabled (not .Values.webhook.enabled) -}}
{{- fail "agent.enabled needs webhook.enabled: the webhook is what adds the agent to pods" -}}
{{- end -}}
{{- if and (eq .Values.agent.defaultDeliveryMode "agent") (not .Values.agent.enabled) -}}
{{- fail "agent.defaultDeliveryMode is agent but agent.enabled is false: every binding without a mode would be refused at admission; enable the agent or keep csi" -}}
{{- end -}}

{{- $ports := dict -}}
{{- $named := list (list "controller.ports.http" $c.ports.http) (list "controller.ports.broker" $c.ports.broker) -}}
{{- if .Values.webhook.enabled -}}
{{- $named = append $named (list "controller.ports.webhook" $c.ports.webhook) -}}
{{- end -}}
{{- $cn := .Values.changeNotices -}}
{{- if $cn.vaultAudit.enabled -}}
{{- $named = append $named (list "changeNotices.vaultAudit.port" $cn.vaultAudit.port) -}}
{{- if not $cn.vaultAudit.prefixSecret -}}
{{- fail "changeNotices.vaultAudit.prefixSecret is required when changeNotices.vaultAudit.enabled: OpenBao sends audit lines over TCP without TLS, and the shared prefix (the audit device's prefix option) is how the listener knows its sender" -}}
{{- end -}}
{{- end -}}
{{- if and $cn.vaultEvents.enabled (not $cn.vaultEvents.backend) -}}
{{- fail "changeNotices.vaultEvents.backend is required when changeNotices.vaultEvents.enabled: the Vault backend (ClusterSecretBackend/<name> or SecretBackend/<namespace>/<name>) whose address and identity subscribe to the events API" -}}
{{- end -}}
{{- if and $cn.awsSqs.enabled (or (not $cn.awsSqs.queueUrl) (not $cn.awsSqs.backend)) -}}
{{- fail "changeNotices.awsSqs.queueUrl and changeNotices.awsSqs.backend are required when changeNotices.awsSqs.enabled: the queue to read, and the AWS backend (ClusterSecretBackend/<name> or SecretBackend/<namespace>/<name>) whose credentials read it" -}}
{{- end -}}
{{- if $cn.azureEventGrid.enabled -}}
{{- $named = append $named (list "changeNotices.azureEventGrid.port" $cn.azureEventGrid.port) -}}
{{- $entra := $cn.azureEventGrid.entra -}}
{{- if not (or $cn.azureEventGrid.secretName $entra.enabled) -}}
{{- fail "changeNotices.azureEventGrid.secretName is required when changeNotices.azureEventGrid.enabled (unless changeNotices.azureEventGrid.entra.enabled): the Secret (key `secret`) holding the shared secret of the subscription URL's code, or the Entra token check, is how the receiver knows its sender" -}}
{{- end -}}
{{- if and $entra.enabled (not $entra.audience) -}}
{{- fail "changeNotices.azureEventGrid.entra.audience is required when changeNotices.azureEventGrid.entra.enabled: the webhook app registration's application id or id URI, which Event Grid's tokens are issued for" -}}
{{- end -}}
{{- if and $entra.enabled (not $entra.tenantId) (not (and $entra.issuer $entra.jwksUrl)) -}}
{{- fail "changeNotices.azureEventGrid.entra.tenantId is required when changeNotices.azureEventGrid.entra.enabled, unless both entra.issuer and entra.jwksUrl are set: it names the tokens' issuer and signing keys" -}}
{{- end -}}
{{- end -}}
{{- range $named -}}
{{- $key := toString (index . 1) -}}
{{- if hasKey $ports $key -}}
{{- fail (printf "%s (%s) equals %s: the controller's ports (http, broker, webhook, change-notice listeners) must all differ" (index . 0) $key (get $ports $key)) -}}
{{- end -}}
{{- $_ := set $ports $key (index . 0) -}}
{{- end -}}

{{- $pdb := $c.podDisruptionBudget -}}
{{- if and $pdb.enabled (gt (int $c.replicas) 1) -}}
{{- $min := $pdb.minAvailable -}}
{{- if kindIs "string" $min -}}
{{- if ge (int (trimSuffix "%" $min)) 100 -}}
{{- fail (printf "controller.podDisruptionBudget.minAvailable %q must be below 100%%: at 100%% no controller replica could ever be evicted, and node drains would hang" $min) -}}
{{- end -}}
{{- else if ge (int $min) (int $c.replicas) -}}
{{- fail (printf "controller.podDisruptionBudget.minAvailable (%d) must be less than controller.replicas (%d): otherwise no replica could ever be evicted, and node drains would hang" (int $min) (int $c.replicas)) -}}
{{- end -}}
{{- end -}}

{{- $selectorKeys := list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/component" -}}
{{- range $key, $_ := $c.podLabels -}}
{{- if has $key $selectorKeys -}}
{{- fail (printf "controller.podLabels must not set %q: the chart's selector labels (%s) identify the controller pods to the Deployment and the Services" $key (join ", " $selectorKeys)) -}}
{{- end -}}
{{- end -}}

{{- if .Values.nodePlugin.enabled -}}
{{- $size := toString .Values.nodePlugin.tmpfsSize -}}
{{- $digits := regexFind "^[0-9]+" $size -}}
{{- $units := dict "" 1 "k" 1000 "Ki" 1024 "M" 1000000 "Mi" 1048576 "G" 1000000000 "Gi" 1073741824 -}}
{{- $bytes := mul (int64 $digits) (get $units (trimPrefix $digits $size)) -}}
{{- if or (lt $bytes 4096) (gt $bytes 1073741824) -}}
{{- fail (printf "nodePlugin.tmpfsSize %q must be between 4Ki and 1Gi: it is the size limit of every volume's tmpfs, in node memory, and the node plugin refuses other sizes" $size) -}}
{{- end -}}
{{- end -}}
{{- end -}}
