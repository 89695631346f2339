#!/usr/bin/env bash
# Checks deploy/k8s/troupe.yaml (or the files given) without a cluster:
# against the Kubernetes API's schema and for what the API server or the
# kubelet would refuse later (deploy/k8s/validate.mjs says what). Needs node
# and npm (apt-get install nodejs npm); the two npm packages it uses are
# installed once under ${XDG_CACHE_HOME:-~/.cache}/troupe/k8s-validate.
# The Secret troupe-token is made with kubectl (see the manifest's head).
#
#   deploy/k8s/validate.sh [--secret NAME]... [FILE.yaml ...]
#
# --secret NAME: a Secret made outside the files (kubectl create secret);
# troupe-token always counts as one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: deploy/k8s/validate.sh [--secret NAME]... [FILE.yaml ...]  (default: deploy/k8s/troupe.yaml)"
files=() secrets=(--secret troupe-token)
while [[ $# -gt 0 ]]; do
  case $1 in
    -h|--help) echo "$usage"; exit 0 ;;
    --secret) [[ $# -ge 2 ]] || { echo "deploy/k8s/validate.sh: --secret needs a name; $usage"; exit 2; }
              secrets+=(--secret "$2"); shift 2 ;;
    -*) echo "deploy/k8s/validate.sh: unknown option '$1'; $usage"; exit 2 ;;
    *) [[ -f $1 ]] || { echo "deploy/k8s/validate.sh: no file '$1'"; exit 2; }
       files+=("$1"); shift ;;
  esac
done
[[ ${#files[@]} -gt 0 ]] || files=("$here/troupe.yaml")
command -v node >/dev/null && command -v npm >/dev/null ||
  { echo "deploy/k8s/validate.sh: needs node and npm (apt-get install nodejs npm)"; exit 2; }
cache=${XDG_CACHE_HOME:-$HOME/.cache}/troupe/k8s-validate
models=4.5.1 jsyaml=4.1.0
if [[ ! -f $cache/.installed-$models-$jsyaml ]]; then
  mkdir -p "$cache"
  [[ -f $cache/package.json ]] || echo '{"private":true}' > "$cache/package.json"
  npm install --prefix "$cache" --no-audit --no-fund --silent "kubernetes-models@$models" "js-yaml@$jsyaml" ||
    { echo "deploy/k8s/validate.sh: npm could not install kubernetes-models and js-yaml"; exit 2; }
  touch "$cache/.installed-$models-$jsyaml"
fi
cp "$here/validate.mjs" "$cache/validate.mjs"  # resolves its imports from the cache's node_modules
status=0
for f in "${files[@]}"; do
  node "$cache/validate.mjs" "$(realpath "$f")" "${secrets[@]}" || status=1
done
exit $status
