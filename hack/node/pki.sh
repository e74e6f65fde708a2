# shellcheck shell=bash
# Certificates, tokens and kubeconfigs of the host node. Sourced by hack/node-up.sh.
# One CA signs the API server's and the kubelet's serving certificates and the API server's client
# certificate for the kubelet; the components authenticate with static tokens (kube-apiserver
# --token-auth-file) under their usual identities, so RBAC and the Node authorizer apply as in a
# kubeadm cluster. Kept across teardowns in .cache/node/pki (cheap, and a kubeconfig stays valid).

# _node_cert <dir> <name> <subject> <extensions>: key + certificate signed by the CA
_node_cert() {
  local dir="$1" name="$2" subj="$3" ext="$4"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr" 2> /dev/null
  printf '%b\n' "$ext" > "$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2> /dev/null \
    || node_die "openssl could not sign $name"
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}

# node_make_pki <dir>
node_make_pki() {
  local dir="$1" svc_ip t
  rm -rf "$dir"
  mkdir -p "$dir"
  chmod 700 "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -sha256 \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" -subj "/CN=supercluster-node-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2> /dev/null || node_die "openssl could not make the CA"
  # the first address of the service range is the kubernetes Service's ClusterIP
  svc_ip="$(awk -F'[./]' '{ print $1 "." $2 "." $3 "." $4 + 1 }' <<< "$NODE_SERVICE_CIDR")"
  _node_cert "$dir" apiserver "/CN=kube-apiserver" \
    "subjectAltName=IP:$NODE_API_IP,IP:$svc_ip,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature"
  _node_cert "$dir" kubelet "/CN=system:node:$NODE_NAME/O=system:nodes" \
    "subjectAltName=IP:$NODE_API_IP,DNS:$NODE_NAME\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature"
  _node_cert "$dir" apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client/O=system:masters" \
    "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/sa.key" 2> /dev/null \
    || node_die "openssl could not make the service account key"
  openssl pkey -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2> /dev/null
  # token,user,uid,"groups"
  {
    t="$(openssl rand -hex 24)"; echo "$t,admin,admin,\"system:masters\""
    t="$(openssl rand -hex 24)"; echo "$t,system:node:$NODE_NAME,node-$NODE_NAME,\"system:nodes\""
    t="$(openssl rand -hex 24)"; echo "$t,system:kube-controller-manager,kube-controller-manager"
    t="$(openssl rand -hex 24)"; echo "$t,system:kube-scheduler,kube-scheduler"
    t="$(openssl rand -hex 24)"; echo "$t,system:kube-proxy,kube-proxy"
  } > "$dir/tokens.csv.tmp"
  mv "$dir/tokens.csv.tmp" "$dir/tokens.csv"
  node_log "made the node's CA, certificates and tokens in $dir"
}

# _node_token <dir> <uid>: the token of one identity
_node_token() { awk -F, -v u="$2" '$3 == u { print $1 }' "$1/tokens.csv"; }

# _node_kubeconfig <file> <user> <token> <ca file>
_node_kubeconfig() {
  local ca
  ca="$(base64 -w0 < "$4")"
  cat > "$1.tmp" << EOF
apiVersion: v1
kind: Config
clusters:
- name: sc-node
  cluster:
    server: https://$NODE_API_IP:$NODE_API_PORT
    certificate-authority-data: $ca
users:
- name: $2
  user:
    token: $3
contexts:
- name: sc-node
  context: {cluster: sc-node, user: $2}
current-context: sc-node
EOF
  chmod 600 "$1.tmp"
  mv "$1.tmp" "$1"
}

# node_write_kubeconfigs <pki dir>: admin (.cache/node/kubeconfig) and one per component
node_write_kubeconfigs() {
  local dir="$1" c
  _node_kubeconfig "$NODE_KUBECONFIG" admin "$(_node_token "$dir" admin)" "$dir/ca.crt"
  _node_kubeconfig "$NODE_DIR/kubelet.kubeconfig" "system:node:$NODE_NAME" \
    "$(_node_token "$dir" "node-$NODE_NAME")" "$dir/ca.crt"
  for c in kube-controller-manager kube-scheduler kube-proxy; do
    _node_kubeconfig "$NODE_DIR/$c.kubeconfig" "$c" "$(_node_token "$dir" "$c")" "$dir/ca.crt"
  done
}
