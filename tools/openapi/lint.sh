#!/usr/bin/env bash
# Lints docs/openapi.yaml with Redocly CLI (installed from package-lock.json); the ctest test lint.openapi.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=tools/openapi/ensure.sh
. "$here/ensure.sh"
cd "$here"
exec ./node_modules/.bin/redocly lint --config redocly.yaml ../../docs/openapi.yaml
