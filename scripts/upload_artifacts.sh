#!/usr/bin/env bash
# Upload what the Spark jobs need to the stack's artifacts bucket (docs/DEPLOY.md):
#
#   s3://<artifacts>/jobs/glue/*.py        Glue job script (BronzeToSilverGlueJob)
#   s3://<artifacts>/jobs/emr/*.py         EMR Serverless entry points (refresh_derived.py, maintain_table.py)
#   s3://<artifacts>/dist/<wheel>          the lakehouse wheel (Glue: --additional-python-modules)
#   s3://<artifacts>/dist/pyspark_env.tar.gz   optional, --emr-env: Python environment for EMR Serverless
#   s3://<artifacts>/datasets/*.yaml       dataset contracts (for reference; Lambdas read /opt/datasets)
#
# usage: scripts/upload_artifacts.sh [--config-env dev|staging|prod | --stack NAME] [--region R]
#                                    [--emr-env PATH/pyspark_env.tar.gz] [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."

env_name=dev
stack=""
region=${AWS_REGION:-us-east-1}
emr_env=""
dry_run=""
while (($#)); do
  case "$1" in
    --config-env) env_name=$2; shift 2 ;;
    --stack) stack=$2; shift 2 ;;
    --region) region=$2; shift 2 ;;
    --emr-env) emr_env=$2; shift 2 ;;
    --dry-run) dry_run="--dryrun"; shift ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
stack=${stack:-lakehouse-$env_name}
PYTHON=${PYTHON:-python3}

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

echo "== uploading to s3://$bucket"
aws s3 sync $dry_run --region "$region" --delete --exclude '*' --include '*.py' jobs/glue "s3://$bucket/jobs/glue"
aws s3 sync $dry_run --region "$region" --delete --exclude '*' --include '*.py' jobs/emr "s3://$bucket/jobs/emr"
aws s3 cp $dry_run --region "$region" "$wheel" "s3://$bucket/dist/$(basename "$wheel")"
if ls datasets/*.yaml >/dev/null 2>&1; then
  aws s3 sync $dry_run --region "$region" --delete --exclude '*' --include '*.yaml' datasets "s3://$bucket/datasets"
fi
if [[ -n "$emr_env" ]]; then
  aws s3 cp $dry_run --region "$region" "$emr_env" "s3://$bucket/dist/pyspark_env.tar.gz"
fi
echo "done: jobs, $(basename "$wheel")${emr_env:+, pyspark_env.tar.gz} in s3://$bucket"
