#!/usr/bin/env bash
# Install the peer engines for kernels-bench (tfjs-backend-webgpu, onnxruntime-node).
# --ignore-scripts: onnxruntime-node's postinstall downloads optional CUDA/TensorRT
# binaries from a host outside the npm registry; the WebGPU and CPU EPs are bundled.
# Idempotent: does nothing when node_modules was installed from this same package.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export ONNXRUNTIME_NODE_INSTALL=skip

hash=$(sha256sum package.json | cut -d' ' -f1)
stamp=node_modules/.reef-peers-installed
if [[ -f "$stamp" && "$(cat "$stamp")" == "$hash" ]]; then
  echo "peers: already installed (package.json $hash)"
  exit 0
fi

npm install --ignore-scripts --no-audit --no-fund
echo "$hash" > "$stamp"
echo "peers: installed (package.json $hash)"
