#!/usr/bin/env bash
# Validates the deployment files offline: the Dockerfile, docker-compose.yml with .env.example,
# the Kubernetes kustomizations (rendered, then checked against the Kubernetes API schemas),
# the shell scripts in deploy/, and the consistency between them and docs/configuration.md;
# and the gateway's OpenAPI document against the OpenAPI 3.1 schema.
#
#   bash deploy/validate.sh
#
# The validators come from PyPI (deploy/validate-requirements.txt) and are installed once into
# ${XDG_CACHE_HOME:-$HOME/.cache}/predictloop/tools/venv, reinstalled only when that file
# changes; later runs use no network at all. Every check runs, then the script exits non-zero
# if any failed. CI runs it from .ci/run.
#
# Environment:
#   KUBE_VERSIONS   Kubernetes versions to validate against [1.31.0 1.37.0]: the oldest one
#                   we support and the newest the schemas cover.
#   PREDICTLOOP_TOOLS_DIR   where the virtualenv lives [${XDG_CACHE_HOME:-$HOME/.cache}/predictloop/tools]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

KUBE_VERSIONS=${KUBE_VERSIONS:-1.31.0 1.37.0}
TOOLS_DIR=${PREDICTLOOP_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/predictloop/tools}
VENV=$TOOLS_DIR/venv
REQUIREMENTS=deploy/validate-requirements.txt

# --------------------------------------------------------------------------------------------
# The tools
# --------------------------------------------------------------------------------------------
install_tools() {
    local want have
    want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
    have=$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)
    if [[ -x $VENV/bin/python && $have == "$want" ]]; then
        echo "validators: cached in $VENV"
        return
    fi
    echo "validators: installing into $VENV (from $REQUIREMENTS)"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV"; then
        echo "error: python3 cannot create a virtualenv (on Debian: apt-get install python3-venv)" >&2
        exit 1
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$REQUIREMENTS"
    # Written last: an interrupted install is redone on the next run.
    echo "$want" >"$VENV/.requirements.sha256"
}

mkdir -p "$TOOLS_DIR"
(
    # One installer at a time on this machine.
    flock 9
    install_tools
) 9>"$TOOLS_DIR/.lock"

export PATH="$VENV/bin:$PATH"
bin() { echo "$VENV/bin/$1"; }

# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=()
# Each check is a function run as an `if` condition, where `set -e` does not apply: every
# step inside must pass its failure on (`|| return 1`) itself.
check() { # check NAME COMMAND...: runs one check, records a failure, never stops the script
    local name=$1
    shift
    printf -- '--- %s\n' "$name"
    if "$@"; then
        echo "ok"
    else
        echo "FAILED: $name" >&2
        failed+=("$name")
    fi
}

# The API description the gateway serves, against the OpenAPI 3.1 specification's schema
# (its consistency with the route table is checked by the gateway's tests).
openapi_document() {
    "$(bin openapi-spec-validator)" gateway/openapi.json
}

hadolint_dockerfile() {
    "$(bin hadolint)" --no-color Dockerfile
}

shellcheck_scripts() {
    "$(bin shellcheck)" deploy/validate.sh deploy/docker/*.sh
}

# The compose file against the Compose specification's JSON schema.
compose_schema() {
    "$(bin check-jsonschema)" --builtin-schema vendor.compose-spec docker-compose.yml
}

# The compose file loaded as `docker compose` loads it, with the values of .env.example and a
# placeholder for each secret the operator must fill (compose refuses them empty).
compose_config() {
    sed -E \
        -e 's/^(POSTGRES_PASSWORD|REDIS_PASSWORD|ADMIN_PASSWORD|RETRAIN_WORKER_CLIENT_SECRET|FEEDBACK_SVC_CLIENT_SECRET)=$/\1=validation-placeholder/' \
        .env.example >"$work/compose.env" || return 1
    "$(bin docker-compose)" --env-file "$work/compose.env" -f docker-compose.yml config --quiet
}

# .env.example must list every variable of the table in docs/configuration.md (set, or commented
# out with the reason), and define every variable docker-compose.yml interpolates.
env_example_complete() {
    "$(bin python)" - docs/configuration.md .env.example docker-compose.yml <<'PY'
import re
import sys

configuration, env_example, compose = (open(p, encoding="utf-8").read() for p in sys.argv[1:])

section = re.search(r"^## Environment variables\n(.*?)(?=^## |\Z)", configuration, re.S | re.M)
if not section:
    sys.exit("docs/configuration.md: no '## Environment variables' section")
documented = set()
for line in section.group(1).splitlines():
    if line.startswith("| `"):
        first_cell = line.split("|")[1]
        documented.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
if len(documented) < 20:
    sys.exit(f"docs/configuration.md: only {len(documented)} variables found in its table")

listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", env_example, re.M))
defined = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", env_example, re.M))
used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose))

problems = []
for name in sorted(documented - listed):
    problems.append(f".env.example: {name} (docs/configuration.md) is not listed (add it, or a "
                    f"commented-out line saying why it does not apply to the containers)")
for name in sorted(used - defined):
    problems.append(f".env.example: docker-compose.yml uses ${{{name}}}, which is not set here")
for problem in problems:
    print(problem, file=sys.stderr)
print(f"{len(documented)} documented variables listed, {len(used)} compose variables defined")
sys.exit(1 if problems else 0)
PY
}

# The collector's configuration exists twice (compose mounts one, kustomize cannot read files
# outside its folder): the copies must not drift.
otel_config_in_sync() {
    "$(bin python)" -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' \
        deploy/otel-collector.yaml &&
        cmp deploy/otel-collector.yaml k8s/base/otel-collector/config.yaml
}

# Each overlay rendered with kubectl's kustomize, then every object checked against the
# Kubernetes OpenAPI schemas, strictly (unknown fields are errors).
kustomize_overlay() {
    local overlay=$1 out="$work/${1//\//-}.yaml" version
    "$(bin kubectl)" kustomize "k8s/overlays/$overlay" >"$out" || return 1
    for version in $KUBE_VERSIONS; do
        "$(bin kubernetes-validate)" --kubernetes-version "$version" --strict --quiet "$out" ||
            return 1
    done
    echo "$(grep -c '^kind:' "$out") objects"
}

# The Secret template is not part of any kustomization; it must still be valid.
secret_template() {
    local version
    for version in $KUBE_VERSIONS; do
        "$(bin kubernetes-validate)" --kubernetes-version "$version" --strict --quiet \
            k8s/secrets.example.yaml || return 1
    done
}

check "hadolint Dockerfile" hadolint_dockerfile
check "shellcheck deploy/*.sh" shellcheck_scripts
check "compose schema (check-jsonschema vendor.compose-spec)" compose_schema
check "docker-compose config (.env.example)" compose_config
check ".env.example lists every variable" env_example_complete
check "otel-collector config copies identical" otel_config_in_sync
for overlay in dev prod dev/migrate prod/migrate; do
    check "kustomize k8s/overlays/$overlay + kubernetes-validate ($KUBE_VERSIONS)" \
        kustomize_overlay "$overlay"
done
check "k8s/secrets.example.yaml" secret_template
check "gateway/openapi.json (OpenAPI 3.1)" openapi_document

if ((${#failed[@]})); then
    printf '\n%d deployment check(s) failed:\n' "${#failed[@]}" >&2
    printf '  - %s\n' "${failed[@]}" >&2
    exit 1
fi
printf '\nall deployment checks passed\n'
