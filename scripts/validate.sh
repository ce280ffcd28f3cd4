#!/usr/bin/env bash
# Every offline check of the SAM template and the state machines (docs/DEPLOY.md, docs/ARCHITECTURE.md).
#
#   bash scripts/validate.sh --install     create .tools/ (pinned cfn-lint, SAM CLI, checkov, npm ASL linters)
#   bash scripts/validate.sh               cfn-lint, sam validate --lint, statelint, asl-validator, checkov,
#                                          sam build (no Docker), Lambda size check
#   bash scripts/validate.sh --build-only  sam build + size check only
#
# Needs no AWS account and no Docker; the only network it uses is the package registries (--install,
# and pip inside the layer Makefiles during sam build).
set -euo pipefail
cd "$(dirname "$0")/.."

CFN_LINT_VERSION=1.58.0
SAM_CLI_VERSION=1.170.0
CHECKOV_VERSION=3.3.30
STATELINT_VERSION=1.30.0
ASL_VALIDATOR_VERSION=4.0.0
REGION=${AWS_REGION:-us-east-1}
TOOLS=.tools
PY=${PYTHON:-python3}
LAMBDA_UNZIPPED_LIMIT=262144000

# Offline: no credentials lookups, no telemetry, no update checks.
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION=$REGION
export AWS_REGION=$REGION
export BOTO_CONFIG=/dev/null

log() { printf '\n== %s\n' "$*"; }

install_tools() {
  mkdir -p "$TOOLS"
  # Separate virtual environments: SAM CLI pins its own cfn-lint and checkov pins many libraries.
  for spec in "cfn-lint:cfn-lint==$CFN_LINT_VERSION" "sam:aws-sam-cli==$SAM_CLI_VERSION" \
              "checkov:checkov==$CHECKOV_VERSION"; do
    name=${spec%%:*}
    req=${spec#*:}
    if [[ ! -x "$TOOLS/$name/bin/python" ]]; then
      "$PY" -m venv "$TOOLS/$name"
    fi
    log "installing $req into $TOOLS/$name"
    "$TOOLS/$name/bin/pip" install --quiet --disable-pip-version-check "$req"
  done
  log "installing @wmfs/statelint@$STATELINT_VERSION asl-validator@$ASL_VALIDATOR_VERSION"
  mkdir -p "$TOOLS/npm"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/npm" \
    "@wmfs/statelint@$STATELINT_VERSION" "asl-validator@$ASL_VALIDATOR_VERSION"
  touch "$TOOLS/.installed"
  log "tools installed in $TOOLS"
}

require_tools() {
  local missing=0
  for t in "$TOOLS/cfn-lint/bin/cfn-lint" "$TOOLS/sam/bin/sam" "$TOOLS/checkov/bin/checkov" \
           "$TOOLS/npm/node_modules/.bin/statelint" "$TOOLS/npm/node_modules/.bin/asl-validator"; do
    if [[ ! -x "$t" ]]; then echo "missing $t" >&2; missing=1; fi
  done
  if (( missing )); then
    echo "run: bash scripts/validate.sh --install" >&2
    exit 2
  fi
}

sam_build() {
  log "sam build (no Docker, no local python3.13: functions and layers build with makefiles)"
  # layers/functions/Makefile copies each function's code (its dependencies come from the layers);
  # layers/{shared,engine}/Makefile cross-install manylinux aarch64 wheels for CPython 3.13 with pip.
  rm -rf .aws-sam/build
  "$TOOLS/sam/bin/sam" build --template-file template.yaml --build-dir .aws-sam/build \
    --region "$REGION" --parallel --cached --cache-dir .aws-sam/cache
}

dir_bytes() {
  # Apparent size of every file (what Lambda counts when it unzips), symlinks followed.
  find -L "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'
}

size_check() {
  log "Lambda unzipped size check (limit $LAMBDA_UNZIPPED_LIMIT bytes per function, code + layers)"
  local build=.aws-sam/build failed=0
  # Function logical id -> layers it uses (must match template.yaml; tests/unit/test_template.py checks it).
  local -A layers_of=(
    [CommitObjectFunction]="SharedLayer EngineLayer"
    [InspectObjectFunction]="SharedLayer EngineLayer"
    [RegisterTableFunction]="SharedLayer EngineLayer"
    [RollbackTableFunction]="SharedLayer EngineLayer"
    [MaintainTableFunction]="SharedLayer EngineLayer"
    [PlanMaintenanceFunction]="SharedLayer EngineLayer"
    [ManageBatchFunction]="SharedLayer EngineLayer"
  )
  for fn in CommitObjectFunction InspectObjectFunction RegisterTableFunction RollbackTableFunction \
            MaintainTableFunction ManageBatchFunction \
            PlanMaintenanceFunction; do
    local total parts
    total=$(dir_bytes "$build/$fn")
    parts="$fn=$total"
    for layer in ${layers_of[$fn]}; do
      if [[ ! -d "$build/$layer" ]]; then
        echo "missing build output $build/$layer" >&2
        exit 1
      fi
      local b
      b=$(dir_bytes "$build/$layer")
      total=$((total + b))
      parts="$parts + $layer=$b"
    done
    if (( total < LAMBDA_UNZIPPED_LIMIT )); then
      printf 'OK   %-24s %11d bytes (%s)  headroom %d\n' "$fn" "$total" "$parts" $((LAMBDA_UNZIPPED_LIMIT - total))
    else
      printf 'FAIL %-24s %11d bytes (%s) >= %d\n' "$fn" "$total" "$parts" "$LAMBDA_UNZIPPED_LIMIT"
      failed=1
    fi
  done
  return $failed
}

mode=${1:-all}
case "$mode" in
  --install) install_tools; exit 0 ;;
  --build-only) require_tools; sam_build; size_check; exit $? ;;
  all|--all) ;;
  *) echo "usage: $0 [--install|--build-only]" >&2; exit 2 ;;
esac

require_tools

log "cfn-lint $CFN_LINT_VERSION (errors and warnings fail)"
"$TOOLS/cfn-lint/bin/cfn-lint" --regions "$REGION" -- template.yaml connectors/athena-dynamodb.yaml
echo "cfn-lint: clean"

log "sam validate --lint"
"$TOOLS/sam/bin/sam" validate --lint --template-file template.yaml --region "$REGION"
"$TOOLS/sam/bin/sam" validate --lint --template-file connectors/athena-dynamodb.yaml --region "$REGION"

log "ASL: statelint $STATELINT_VERSION + asl-validator $ASL_VALIDATOR_VERSION"
# Both linters require Task "Resource" to be an ARN, so lint the definitions with their ${...}
# DefinitionSubstitutions resolved to sample values of the right kind (scripts/asl_resolve.py).
asl_out=.aws-sam/asl-lint
mkdir -p "$asl_out"
for asl in statemachine/*.asl.json; do
  resolved="$asl_out/$(basename "$asl")"
  "$TOOLS/cfn-lint/bin/python" scripts/asl_resolve.py "$asl" "$resolved"
  "$TOOLS/npm/node_modules/.bin/statelint" "$resolved"
  "$TOOLS/npm/node_modules/.bin/asl-validator" --silent --json-path "$resolved"
  echo "$asl: valid (statelint, asl-validator)"
done

log "checkov $CHECKOV_VERSION (cloudformation)"
"$TOOLS/checkov/bin/checkov" -f template.yaml -f connectors/athena-dynamodb.yaml \
  --framework cloudformation --quiet --compact --skip-download --output cli

sam_build
size_check
log "validate: all checks passed"
