# run.sh's Kubernetes phases (sourced by run.sh): a real API server on
# this machine and what is deployed to it.
#
#   etcd, kube-apiserver, kube-controller-manager and kube-scheduler on
#   free loopback ports and kwok simulating one node (all from tools/kube),
#   so pods are scheduled and become Ready (or, for Jobs, complete) without
#   containers: compose runs the real containers, this checks what the API
#   server enforces and how Helm, kubectl and ArgoCD's objects fare on it.
#
#   Every step is bounded (kubectl's and helm's own timeouts, and
#   `bounded` around the rest); on failure kube_diag writes the cluster's
#   state to kube-state.log, which run.sh prints with the other logs.

KUBE_DIR=$LIVE_WORK/kube
export KUBECONFIG=$KUBE_DIR/admin.kubeconfig
CHART=$LIVE_ROOT/charts/stockquote

# bounded SECONDS COMMAND...: COMMAND, killed after SECONDS (exit 124).
bounded() {
  local secs=$1
  shift
  timeout -k 10 "$secs" "$@"
}

# kube_diag writes what a failed kube step needs to be understood: pods,
# workloads and events of every namespace, and the control plane's errors.
kube_diag() {
  [ -f "$KUBECONFIG" ] || return 0
  {
    echo "== nodes, workloads, pods"
    bounded 20 kubectl get nodes,deployments,statefulsets,jobs,pods -A -o wide
    echo "== last events"
    bounded 20 kubectl get events -A --sort-by=.lastTimestamp | tail -n 40
    echo "== helm releases"
    bounded 20 helm list -A -a
    local p
    for p in kube-apiserver kube-controller-manager kube-scheduler kwok etcd; do
      echo "== errors in $p.log"
      grep -E '^[EF][0-9]{4}|level=(error|ERROR)|"level":"(error|fatal)"' "$LIVE_LOGS/$p.log" 2>/dev/null | tail -n 10
    done
  } >"$LIVE_LOGS/kube-state.log" 2>&1
}

# No kubectl or helm command waits longer than 7 minutes, whatever it waits
# for (each also has its own, shorter --timeout where it waits on purpose).
KUBECTL_BIN=$(command -v kubectl)
HELM_BIN=$(command -v helm)
kubectl() { bounded 420 "$KUBECTL_BIN" "$@"; }
helm() { bounded 420 "$HELM_BIN" "$@"; }

# kube_node_steady fails when the fake node went not-Ready during the run
# (its heartbeat missed the node lifecycle controller's grace period): pods
# then lose readiness and later steps fail at random.
kube_node_steady() {
  if grep -q 'Entering master disruption mode' "$LIVE_LOGS/kube-controller-manager.log"; then
    kube_diag
    die "the kwok node went not-Ready during the run (kube-controller-manager.log, kube-state.log)"
  fi
  log "kube: the kwok node stayed Ready throughout"
}

kube_stop() {
  local p
  for p in registry kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    stop_pidfile "$KUBE_DIR/$p.pid" 20
  done
}

# bg NAME COMMAND...: start a control-plane process, log and pid in KUBE_DIR.
bg() {
  local name=$1
  shift
  "$@" >"$LIVE_LOGS/$name.log" 2>&1 &
  echo $! >"$KUBE_DIR/$name.pid"
}

kube_certs() {
  local d=$KUBE_DIR/pki
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=stockquote-live-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >san.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out apiserver.crt -days 2 -extfile san.ext 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=live-admin" 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out admin.crt -days 2 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

kube_start() {
  mkdir -p "$KUBE_DIR"
  LIVE_KUBE_STOP=kube_stop LIVE_KUBE_DIAG=kube_diag
  kube_certs
  local pki=$KUBE_DIR/pki etcd_port peer_port api_port
  etcd_port=$(free_port)
  peer_port=$(free_port)
  api_port=$(free_port)
  log "kube: etcd on 127.0.0.1:$etcd_port, kube-apiserver on 127.0.0.1:$api_port"
  # --unsafe-no-fsync: a throw-away store; fsyncs only slow the shared disk.
  bg etcd etcd --name live --data-dir "$KUBE_DIR/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "live=http://127.0.0.1:$peer_port"
  wait_for 30 etcd curl -fsS "http://127.0.0.1:$etcd_port/health"

  # --endpoint-reconciler-type=none: the loopback advertise address is
  # refused otherwise; nothing here routes to the kubernetes Service.
  bg kube-apiserver kube-apiserver --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --service-cluster-ip-range 10.0.0.0/24 --authorization-mode Node,RBAC --endpoint-reconciler-type none \
    --kubelet-preferred-address-types InternalIP \
    --client-ca-file "$pki/ca.crt" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc
  kubectl config set-cluster live --server "https://127.0.0.1:$api_port" --certificate-authority "$pki/ca.crt" --embed-certs >/dev/null
  kubectl config set-credentials admin --client-certificate "$pki/admin.crt" --client-key "$pki/admin.key" --embed-certs >/dev/null
  kubectl config set-context live --cluster live --user admin >/dev/null
  kubectl config use-context live >/dev/null
  wait_for 90 kube-apiserver kubectl get --raw /readyz
  log "kube: API server $(kubectl version -o json | jq -r .serverVersion.gitVersion) ready"

  bg kube-controller-manager kube-controller-manager --kubeconfig "$KUBECONFIG" \
    --controllers '*,-nodeipam' --leader-elect=false --bind-address 127.0.0.1 --secure-port "$(free_port)" \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key"
  bg kube-scheduler kube-scheduler --kubeconfig "$KUBECONFIG" --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port "$(free_port)"

  # kwok with its "fast" stages: pods become Ready at once, Job pods succeed.
  # The heartbeat stage renews the node's Ready condition every 20-45 s:
  # without it the node lifecycle controller marks the node not-Ready after
  # its 50 s grace period, pods lose readiness and `helm test --logs` finds
  # no node address.
  local kwok_dir
  kwok_dir=$(cd "$LIVE_ROOT/deploy/live/tools/kube" && bounded 120 go mod download -json sigs.k8s.io/kwok | jq -r .Dir)
  local cfg=()
  for f in "$kwok_dir"/kustomize/stage/node/fast/*.yaml "$kwok_dir"/kustomize/stage/node/heartbeat/*.yaml \
    "$kwok_dir"/kustomize/stage/pod/fast/*.yaml; do
    case "$f" in */kustomization.yaml) continue ;; esac
    cfg+=(--config "$f")
  done
  cfg+=(--config "$LIVE_ROOT/deploy/live/kwok/pod-complete-helm-test.yaml")
  # Pod logs (`helm test --logs`, `kubectl logs`) come through the API
  # server from the node's kubelet endpoint: kwok serves it on loopback,
  # with TLS, from a file (CRI log format) that says no container ran.
  local kwok_port podlog=$KUBE_DIR/kwok-pod.log
  kwok_port=$(free_port)
  printf '%s stdout F %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)" \
    "kwok simulated this pod on make test-live's fake node: no container ran" >"$podlog"
  cat >"$KUBE_DIR/kwok-logs.yaml" <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata: {name: simulated-pods}
spec:
  logs:
  - logsFile: $podlog
EOF
  cfg+=(--config "$KUBE_DIR/kwok-logs.yaml")
  bg kwok kwok --kubeconfig "$KUBECONFIG" "${cfg[@]}" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-ip 127.0.0.1 --node-port "$kwok_port" --cidr 10.0.2.0/24 --server-address "127.0.0.1:$kwok_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key"
  kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
  nodeInfo: {architecture: amd64, kubeProxyVersion: fake, kubeletVersion: fake, operatingSystem: linux}
EOF
  wait_for 60 "kwok node Ready" bash -c "kubectl get node kwok-node-0 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  wait_for 60 "default ServiceAccount" kubectl -n default get serviceaccount default
  # Volumes for the bundled PostgreSQL and RabbitMQ claims (no provisioner here).
  for i in 1 2 3 4; do
    kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: live-pv-$i}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  hostPath: {path: /tmp/stockquote-live-pv-$i}
EOF
  done
  log "kube: controller-manager, scheduler, kwok node ready"
}

# helm_install RELEASE NAMESPACE [helm args...]: as the docs and the Jenkinsfile do it.
helm_install() {
  local rel=$1 ns=$2
  shift 2
  helm upgrade --install "$rel" "$CHART" --namespace "$ns" --create-namespace \
    --set image.registry=docker.io --set image.tag="$IMAGE_TAG" \
    --atomic --wait --timeout 3m "$@"
}

# first_event_time NAMESPACE KIND NAME: when the object's first event happened.
first_event_time() {
  kubectl -n "$1" get events --field-selector "involvedObject.kind=$2,involvedObject.name=$3" \
    -o json | jq -r '[.items[] | (.eventTime // .firstTimestamp)] | sort | first // empty'
}

kube_tests() {
  local out
  # --- default values ---
  log "kube: helm upgrade --install (default values)"
  helm_install sq sq-default >"$LIVE_LOGS/helm-default.log" 2>&1 || die "default install failed: $(tail -n 5 "$LIVE_LOGS/helm-default.log")"
  for d in sq-stockquote-api sq-stockquote-worker; do
    kubectl -n sq-default rollout status "deployment/$d" --timeout 60s >/dev/null || die "deployment $d not rolled out"
  done
  # Hook order: the migration Job ran (and succeeded, so Helm deleted it)
  # before the API's Deployment was created.
  local job_t api_t
  job_t=$(first_event_time sq-default Job sq-stockquote-migrate)
  api_t=$(first_event_time sq-default Deployment sq-stockquote-api)
  [ -n "$job_t" ] && [ -n "$api_t" ] || die "no events for the migration Job ($job_t) or the API Deployment ($api_t)"
  [[ "$job_t" < "$api_t" || "$job_t" == "$api_t" ]] || die "migration Job ($job_t) started after the API Deployment ($api_t)"
  ! kubectl -n sq-default get job sq-stockquote-migrate >/dev/null 2>&1 || die "the succeeded migration Job was not deleted (hook-delete-policy)"
  kubectl -n sq-default get secret sq-stockquote >/dev/null || die "no generated Secret"
  # Logs come through the API server from the (simulated) kubelet, as
  # `helm test --logs` in the Jenkinsfile reads them.
  out=$(kubectl -n sq-default logs deployment/sq-stockquote-api --request-timeout 30s 2>&1) || die "kubectl logs: $out"
  [[ $out == *"no container ran"* ]] || die "kubectl logs gave: $out"
  log "kube: default install OK (migration Job at $job_t, before the API at $api_t)"

  # --- upgrade and rollback ---
  helm_install sq sq-default --set api.logLevel=debug --set image.tag="$IMAGE_TAG-2" >"$LIVE_LOGS/helm-upgrade.log" 2>&1 ||
    die "upgrade failed: $(tail -n 5 "$LIVE_LOGS/helm-upgrade.log")"
  out=$(kubectl -n sq-default get deployment sq-stockquote-api -o jsonpath='{.spec.template.spec.containers[0].image}')
  [[ $out == *":$IMAGE_TAG-2" ]] || die "after the upgrade the API runs $out"
  jwt1=$(kubectl -n sq-default get secret sq-stockquote -o jsonpath='{.data.JWT_SECRET}')
  helm rollback sq 1 --namespace sq-default --wait --timeout 3m >"$LIVE_LOGS/helm-rollback.log" 2>&1 || die "rollback failed: $(tail -n 5 "$LIVE_LOGS/helm-rollback.log")"
  kubectl -n sq-default rollout status deployment/sq-stockquote-api --timeout 60s >/dev/null || die "rollback did not roll out"
  out=$(kubectl -n sq-default get deployment sq-stockquote-api -o jsonpath='{.spec.template.spec.containers[0].image}')
  [[ $out == *":$IMAGE_TAG" ]] || die "after the rollback the API runs $out"
  [ "$(helm history sq -n sq-default -o json | jq length)" = 3 ] || die "want 3 revisions after install, upgrade, rollback"
  [ "$(kubectl -n sq-default get secret sq-stockquote -o jsonpath='{.data.JWT_SECRET}')" = "$jwt1" ] || die "the generated JWT secret changed across upgrade/rollback"
  log "kube: upgrade and rollback OK (3 revisions, JWT secret kept)"

  # --- all-on: the ServiceMonitor fails without its CRD, works with it ---
  local allon=$LIVE_WORK/all-on.yaml
  cat >"$allon" <<'EOF'
ingress:
  enabled: true
  className: nginx
  tls: [{secretName: stockquote-tls, hosts: [stockquote.example.com]}]
metrics:
  podAnnotations: true
  serviceMonitor: {enabled: true, labels: {release: prom}}
  dashboard: {enabled: true}
api: {metricsAddr: ":9090"}
bundled:
  postgresql: {enabled: true}
  rabbitmq: {enabled: true}
EOF
  if helm_install sqa sq-allon -f "$allon" --timeout 1m >"$LIVE_LOGS/helm-allon-nocrd.log" 2>&1; then
    die "all-on install succeeded without the ServiceMonitor CRD"
  fi
  grep -q 'ServiceMonitor' "$LIVE_LOGS/helm-allon-nocrd.log" || die "all-on without the CRD failed for another reason: $(tail -n 3 "$LIVE_LOGS/helm-allon-nocrd.log")"
  local promop
  promop=$(cd "$LIVE_ROOT/deploy/live/tools/crds" && bounded 120 go mod download -json github.com/prometheus-operator/prometheus-operator | jq -r .Dir)
  kubectl apply --server-side -f "$promop/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" >/dev/null
  kubectl wait --for condition=Established crd/servicemonitors.monitoring.coreos.com --timeout 60s >/dev/null
  helm uninstall sqa -n sq-allon --wait --timeout 2m >/dev/null 2>&1 || true
  log "kube: helm upgrade --install (all-on: ingress, ServiceMonitor, bundled PostgreSQL and RabbitMQ)"
  helm_install sqa sq-allon -f "$allon" >"$LIVE_LOGS/helm-allon.log" 2>&1 || die "all-on install failed: $(tail -n 5 "$LIVE_LOGS/helm-allon.log")"
  for o in servicemonitor/sqa-stockquote-api ingress/sqa-stockquote-api statefulset/sqa-stockquote-postgresql statefulset/sqa-stockquote-rabbitmq configmap/sqa-stockquote-dashboard; do
    kubectl -n sq-allon get "$o" >/dev/null 2>&1 || die "all-on: $o missing"
  done
  log "kube: all-on install OK"

  # --- names the API server refuses are refused by the chart first ---
  printf 'fullnameOverride: Bad_Name\n' >"$LIVE_WORK/bad-name.yaml"
  if helm_install bad sq-bad -f "$LIVE_WORK/bad-name.yaml" --timeout 1m >"$LIVE_LOGS/helm-bad-name.log" 2>&1; then
    die "install with fullnameOverride=Bad_Name succeeded"
  fi
  grep -q 'fullnameOverride' "$LIVE_LOGS/helm-bad-name.log" || die "bad name refused without naming fullnameOverride: $(cat "$LIVE_LOGS/helm-bad-name.log")"
  [ -z "$(kubectl -n sq-bad get all,secrets,configmaps -l app.kubernetes.io/instance=bad -o name 2>/dev/null)" ] || die "the bad-name install left objects"
  # ...and the server itself refuses such a name, which is why it matters.
  if kubectl create configmap Bad_Name -n default --dry-run=server >/dev/null 2>&1; then
    die "the API server accepted the name Bad_Name"
  fi
  log "kube: fullnameOverride=Bad_Name refused by the chart: $(grep -m1 -o 'fullnameOverride.*' "$LIVE_LOGS/helm-bad-name.log" | cut -c1-120)"

  # --- the plain manifests, server-side, as docs/deployment.md says ---
  log "kube: kubectl apply --server-side -k deploy/kubernetes"
  kubectl create namespace stockquote >/dev/null
  kubectl -n stockquote create secret generic stockquote-env \
    --from-literal=DATABASE_URL='postgres://stockquote:pw@db.example.internal:5432/stockquote?sslmode=require' \
    --from-literal=AMQP_URL='amqps://stockquote:pw@mq.example.internal:5671/stockquote' \
    --from-literal=JWT_SECRET="$(openssl rand -hex 32)" >/dev/null
  kubectl apply --server-side -k "$LIVE_ROOT/deploy/kubernetes" >"$LIVE_LOGS/plain-apply.log" 2>&1 || die "plain manifests: $(tail -n 5 "$LIVE_LOGS/plain-apply.log")"
  for d in stockquote-api stockquote-worker; do
    kubectl -n stockquote rollout status "deployment/$d" --timeout 90s >/dev/null || die "plain manifests: deployment $d not rolled out"
  done
  kubectl -n stockquote wait --for condition=Complete job/stockquote-migrate --timeout 90s >/dev/null || die "plain manifests: the migration Job did not complete"
  # Re-applying is a no-op (no field manager conflict).
  kubectl apply --server-side -k "$LIVE_ROOT/deploy/kubernetes" >>"$LIVE_LOGS/plain-apply.log" 2>&1 || die "plain manifests: re-apply failed"
  log "kube: plain manifests applied, rolled out, migration Job complete"
}

argocd_tests() {
  local app=$LIVE_ROOT/deploy/argocd/application.yaml proj=$LIVE_ROOT/deploy/argocd/project.yaml
  # ArgoCD's CRDs carry structural schemas of its v1alpha1 types, so the
  # API server's strict field validation refuses what argo-cd's decoder
  # would (a misspelt or misplaced field) without building argo-cd.
  log "argocd: ArgoCD's CRDs applied, deploy/argocd validated with --dry-run=server --validate=strict"
  local argo
  argo=$(cd "$LIVE_ROOT/deploy/live/tools/crds" && bounded 120 go mod download -json github.com/argoproj/argo-cd/v2 | jq -r .Dir)
  kubectl apply --server-side -f "$argo/manifests/crds/application-crd.yaml" -f "$argo/manifests/crds/appproject-crd.yaml" >/dev/null
  kubectl wait --for condition=Established crd/applications.argoproj.io crd/appprojects.argoproj.io --timeout 60s >/dev/null
  kubectl create namespace argocd >/dev/null
  kubectl apply --dry-run=server --validate=strict -f "$proj" -f "$app" >"$LIVE_LOGS/argocd-dry-run.log" 2>&1 ||
    die "argocd: server-side dry run: $(cat "$LIVE_LOGS/argocd-dry-run.log")"
  grep -q 'application.argoproj.io/stockquote created (server dry run)' "$LIVE_LOGS/argocd-dry-run.log" ||
    die "argocd: the dry run did not create the Application: $(cat "$LIVE_LOGS/argocd-dry-run.log")"
  # A misspelt field, at the top of the spec and deep in it, must be refused.
  local bad
  for bad in 's/selfHeal:/selfheal:/' 's/^  project:/  projekt:/'; do
    sed "$bad" "$app" >"$LIVE_WORK/bad-application.yaml"
    ! cmp -s "$app" "$LIVE_WORK/bad-application.yaml" || die "argocd: '$bad' changed nothing in $app"
    if kubectl apply --dry-run=server --validate=strict -f "$LIVE_WORK/bad-application.yaml" >"$LIVE_LOGS/argocd-bad.log" 2>&1; then
      die "argocd: the API server accepted a misspelt field ($bad)"
    fi
    grep -q 'unknown field' "$LIVE_LOGS/argocd-bad.log" || die "argocd: misspelt field ($bad) refused for another reason: $(cat "$LIVE_LOGS/argocd-bad.log")"
  done
  sed 's/^  sourceRepos:/  sourceRepo:/' "$proj" >"$LIVE_WORK/bad-project.yaml"
  if kubectl apply --dry-run=server --validate=strict -f "$LIVE_WORK/bad-project.yaml" >"$LIVE_LOGS/argocd-bad.log" 2>&1; then
    die "argocd: the API server accepted a misspelt AppProject field (sourceRepo)"
  fi
  log "argocd: AppProject and Application pass --dry-run=server --validate=strict; misspelt fields refused"
}

jenkins_tests() {
  local ws=$LIVE_WORK/jenkins-ws origin=$LIVE_WORK/gitops.git reg_port creds=$LIVE_WORK/jenkins-credentials.properties
  local commit tag
  commit=$(git -C "$LIVE_ROOT" rev-parse HEAD)
  tag=${commit:0:12}
  # The job's checkout: the committed HEAD, its origin a bare clone the
  # GitOps stage pushes to; npm's packages hard-linked in. Go's caches are
  # the agent's own (Go's defaults), which make lint and make test filled.
  git clone -q --bare "$LIVE_ROOT" "$origin"
  git -C "$origin" update-ref refs/heads/main "$commit"
  jenkins_checkout() {
    rm -rf "$ws"
    git clone -q "$origin" "$ws"
    git -C "$ws" checkout -q --detach "$commit"
    [ ! -d "$LIVE_ROOT/deploy/node_modules" ] || cp -al "$LIVE_ROOT/deploy/node_modules" "$ws/deploy/"
  }
  # jenkins_run LOG VAR=value...: the Jenkinsfile on the stub in $ws.
  jenkins_run() {
    local logf=$1
    shift
    (
      export WORKSPACE=$ws BRANCH_NAME=main JENKINS_CREDENTIALS=$creds "$@"
      cd "$ws" && groovy "$LIVE_ROOT/deploy/live/jenkins/stub.groovy" Jenkinsfile
    ) >"$logf" 2>&1 || die "jenkins: $(grep '^\[stub' "$logf" | tail -n 5) (see $logf)"
    grep '^\[stub.*\] stages:' "$logf" >&2
  }

  reg_port=$(free_port)
  python3 "$LIVE_ROOT/deploy/live/jenkins/registry.py" "$reg_port" "$LIVE_WORK/registry" >"$LIVE_LOGS/registry.log" 2>&1 &
  echo $! >"$KUBE_DIR/registry.pid"
  wait_for 20 registry curl -fsS "http://127.0.0.1:$reg_port/v2/"

  # The release's secrets in a Secret of our own (secrets.existingSecret),
  # as docs/deployment.md recommends: then no stooq-api-key credential
  # exists, and the Deploy stage must not ask for one.
  kubectl create namespace sq-jenkins >/dev/null
  kubectl -n sq-jenkins create secret generic stockquote-env \
    --from-literal=DATABASE_URL='postgres://stockquote:pw@db.example.internal:5432/stockquote?sslmode=require' \
    --from-literal=AMQP_URL='amqps://stockquote:pw@mq.example.internal:5671/stockquote' \
    --from-literal=JWT_SECRET="$(openssl rand -hex 32)" >/dev/null
  printf 'secrets:\n  existingSecret: stockquote-env\napi:\n  logLevel: info\n' >"$LIVE_WORK/jenkins-values.yaml"
  printf 'api:\n  logLevel: info\n' >"$LIVE_WORK/jenkins-values-generated.yaml"
  local stooq_key
  stooq_key=live-test-key-$(openssl rand -hex 4)
  cat >"$creds" <<EOF2
registry-credentials.username=live-ci
registry-credentials.password=$(openssl rand -hex 12)
kubeconfig-stockquote.file=$KUBECONFIG
stockquote-helm-values.file=$LIVE_WORK/jenkins-values.yaml
stockquote-helm-values-generated.file=$LIVE_WORK/jenkins-values-generated.yaml
stooq-api-key-live.secret=$stooq_key
gitops-credentials.username=live-ci
gitops-credentials.password=$(openssl rand -hex 12)
EOF2
  : "${JAVA_HOME:=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}"
  export JAVA_HOME
  # The Test stage is `make test`'s suite again (CI ran it just before):
  # skipped unless LIVE_JENKINS_SKIP says otherwise.
  local skip=${LIVE_JENKINS_SKIP-Test}
  log "jenkins: the Jenkinsfile's stages on the stub (DEPLOY_MODE=helm, existing Secret, no stooq key credential; skipped: ${skip:-none})"
  jenkins_checkout
  jenkins_run "$LIVE_LOGS/jenkins-helm.log" JENKINS_SKIP_STAGES="$skip" \
    JENKINS_PARAMS="DEPLOY=true,DEPLOY_MODE=helm,DEPLOY_NAMESPACE=sq-jenkins,REGISTRY_HOST=127.0.0.1:$reg_port,STOOQ_API_KEY_CREDENTIAL=" \
    DOCKER_BUILD_FLAGS="--build-arg GO_IMAGE=$GO_IMAGE --build-arg RUNTIME_IMAGE=$RUNTIME_IMAGE --build-arg BUILDKIT_SYNTAX=$BUILDKIT_SYNTAX" \
    CI_POSTGRES_IMAGE="$POSTGRES_IMAGE" CI_RABBITMQ_IMAGE="$RABBITMQ_IMAGE"
  grep -q '\] stages: Lint: ok' "$LIVE_LOGS/jenkins-helm.log" || die "jenkins: Lint did not pass"
  local s out
  for s in apiservice stockservice; do
    curl -fsS -o /dev/null "http://127.0.0.1:$reg_port/v2/stockquote/$s/manifests/$tag" || die "jenkins: the Push stage did not push stockquote/$s:$tag"
  done
  out=$(kubectl -n sq-jenkins get deployment stockquote-api -o jsonpath='{.spec.template.spec.containers[0].image}')
  [ "$out" = "127.0.0.1:$reg_port/stockquote/apiservice:$tag" ] || die "jenkins: the Deploy stage left the API at image '$out'"
  ! kubectl -n sq-jenkins get secret stockquote >/dev/null 2>&1 || die "jenkins: the chart made its own Secret beside secrets.existingSecret"
  log "jenkins: pushed both images to the registry, deployed $out with helm (existing Secret), helm test passed"

  # The Deploy stage again with a stooq key credential and the chart's
  # generated Secret: the key must reach the Secret, not the command line.
  log "jenkins: Chart and Deploy with the stooq key credential (generated Secret)"
  jenkins_checkout
  sed -i "s|^stockquote-helm-values.file=.*|stockquote-helm-values.file=$LIVE_WORK/jenkins-values-generated.yaml|" "$creds"
  jenkins_run "$LIVE_LOGS/jenkins-helm-key.log" JENKINS_SKIP_STAGES="Lint,Deploy checks,Test,Images,Push" \
    JENKINS_PARAMS="DEPLOY=true,DEPLOY_MODE=helm,DEPLOY_NAMESPACE=sq-jenkins-key,REGISTRY_HOST=127.0.0.1:$reg_port,STOOQ_API_KEY_CREDENTIAL=stooq-api-key-live"
  out=$(kubectl -n sq-jenkins-key get secret stockquote -o jsonpath='{.data.STOOQ_API_KEY}' | base64 -d)
  [ "$out" = "$stooq_key" ] || die "jenkins: the release's Secret has STOOQ_API_KEY '$out', not the credential's"
  log "jenkins: the stooq key credential reached the release's Secret"

  # GitOps mode: only the stage that differs (the rest just ran).
  jenkins_checkout
  jenkins_run "$LIVE_LOGS/jenkins-gitops.log" JENKINS_SKIP_STAGES="Lint,Deploy checks,Test,Images,Push,Chart" \
    JENKINS_PARAMS="DEPLOY=true,DEPLOY_MODE=argocd,GITOPS_BRANCH=main"
  git -C "$origin" show main:deploy/argocd/application.yaml >"$LIVE_WORK/pushed-application.yaml"
  grep -q "tag: \"$tag\" # image-tag:" "$LIVE_WORK/pushed-application.yaml" || die "jenkins: the GitOps stage did not push image tag $tag"
  [ "$(git -C "$origin" rev-parse main~1)" = "$commit" ] || die "jenkins: the GitOps push is not one commit on top of $commit"
  kubectl apply --dry-run=server --validate=strict -f "$LIVE_WORK/pushed-application.yaml" >/dev/null || die "jenkins: the bumped Application fails the server's validation"
  log "jenkins: GitOps mode pushed '$(git -C "$origin" log -1 --format=%s main)'"
}
