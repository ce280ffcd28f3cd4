#!/usr/bin/env bash
# Upload what the Spark jobs need to the stack's artifacts bucket (docs/DEPLOY.md):
#
#   s3://<artifacts>/jobs/glue/*.py        Glue job script (BronzeToSilverGlueJob)
#   s3://<artifacts>/jobs/emr/*.py         EMR Serverless entry points (refresh_derived.py, maintain_table.py)
#   s3://<artifacts>/dist/<wheel>          the lakehouse wheel (Glue: --additional-python-modules)
#   s3://<artifacts>/dist/lakehouse_emr.zip     the lakehouse modules the EMR jobs import (spark.submit.pyFiles;
#                                          they run on EMR's own Python 3.9 + pyspark + Delta, no archive)
#   s3://<artifacts>/dist/derived_models.json   every dataset's derived models (name, SQL, sources) for RefreshDerived
#   s3://<artifacts>/datasets/*.yaml       dataset contracts (for reference; Lambdas read /opt/datasets)
#
# usage: scripts/upload_artifacts.sh [--config-env dev|staging|prod | --stack NAME] [--region R] [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."

env_name=dev
stack=""
region=${AWS_REGION:-us-east-1}
dry_run=""
while (($#)); do
  case "$1" in
    --config-env) env_name=$2; shift 2 ;;
    --stack) stack=$2; shift 2 ;;
    --region) region=$2; shift 2 ;;
    --dry-run) dry_run="--dryrun"; shift ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
stack=${stack:-lakehouse-$env_name}
# The derived-models export needs the package's dependencies: the project venv when there is one.
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

bucket=$(aws cloudformation describe-stacks --region "$region" --stack-name "$stack" \
  --query "Stacks[0].Outputs[?OutputKey=='ArtifactsBucketName'].OutputValue" --output text)
if [[ -z "$bucket" || "$bucket" == "None" ]]; then
  echo "stack $stack has no ArtifactsBucketName output (deployed? right region?)" >&2
  exit 1
fi
wheel_param=$(aws cloudformation describe-stacks --region "$region" --stack-name "$stack" \
  --query "Stacks[0].Parameters[?ParameterKey=='LakehouseWheel'].ParameterValue" --output text)

echo "== building the lakehouse wheel"
rm -rf dist/lakehouse-*.whl
"$PYTHON" -m pip wheel --no-deps --quiet --wheel-dir dist .
wheel=$(ls dist/lakehouse-*.whl | head -n 1)
if [[ "$(basename "$wheel")" != "$wheel_param" ]]; then
  echo "warning: built $(basename "$wheel") but the stack's LakehouseWheel parameter is $wheel_param;" \
       "redeploy with LakehouseWheel=$(basename "$wheel")" >&2
fi

echo "== building the EMR job bundle and the derived-models document"
"$PYTHON" scripts/emr_bundle.py dist/lakehouse_emr.zip >/dev/null
PYTHONPATH=src "$PYTHON" -m lakehouse.sql.derived datasets > dist/derived_models.json

echo "== uploading to s3://$bucket"
aws s3 sync $dry_run --region "$region" --delete --exclude '*' --include '*.py' jobs/glue "s3://$bucket/jobs/glue"
aws s3 sync $dry_run --region "$region" --delete --exclude '*' --include '*.py' jobs/emr "s3://$bucket/jobs/emr"
aws s3 cp $dry_run --region "$region" "$wheel" "s3://$bucket/dist/$(basename "$wheel")"
if ls datasets/*.yaml >/dev/null 2>&1; then
  aws s3 sync $dry_run --region "$region" --delete --exclude '*' --include '*.yaml' datasets "s3://$bucket/datasets"
fi
aws s3 cp $dry_run --region "$region" dist/lakehouse_emr.zip "s3://$bucket/dist/lakehouse_emr.zip"
aws s3 cp $dry_run --region "$region" dist/derived_models.json "s3://$bucket/dist/derived_models.json"
echo "done: jobs, $(basename "$wheel"), lakehouse_emr.zip, derived_models.json in s3://$bucket"
