#!/usr/bin/env bash
# Regenerate the recommender's gRPC stubs from src/lambdarec/serving/proto/recommender.proto.
# The generated files are committed; tests/unit/serving/test_proto.py fails when they are stale.
set -euo pipefail
cd "$(dirname "$0")/../src"
out=${1:-.}
../.venv/bin/python -m grpc_tools.protoc -I. --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  lambdarec/serving/proto/recommender.proto
