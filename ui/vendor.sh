#!/usr/bin/env bash
# Copies the pinned elkjs build from npm into the Python package, so that `stepflow ui` needs no
# network and no Node.js at run time. Run by `make ui-assets` after changing ui/package.json.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
out=../operator/stepflow/ui/static/vendor
mkdir -p "$out"
cp node_modules/elkjs/lib/elk-api.js node_modules/elkjs/lib/elk-worker.min.js "$out/"
cp node_modules/elkjs/LICENSE.md "$out/elkjs-LICENSE.md"
echo "elkjs $(node -p 'require("./node_modules/elkjs/package.json").version')" > "$out/VERSIONS"
