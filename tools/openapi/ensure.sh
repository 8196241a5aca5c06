# Sourced by lint.sh and the contract tests: makes sure node and the locked npm packages are
# there, installing them with `npm ci` (exactly package-lock.json) when missing or stale.
openapi_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v node >/dev/null && command -v npm >/dev/null || {
    echo "openapi tools: node and npm are missing; run deploy/install-deps.sh" >&2
    exit 1
}
if [[ ! -f "$openapi_dir/node_modules/.package-lock.json" ||
    "$openapi_dir/package-lock.json" -nt "$openapi_dir/node_modules/.package-lock.json" ]]; then
    # A lock so that parallel tests do not install into the same folder at once.
    (
        flock -w 600 9 || { echo "openapi tools: another npm ci holds the lock" >&2; exit 1; }
        if [[ ! -f "$openapi_dir/node_modules/.package-lock.json" ||
            "$openapi_dir/package-lock.json" -nt "$openapi_dir/node_modules/.package-lock.json" ]]; then
            echo "openapi tools: npm ci in $openapi_dir" >&2
            (cd "$openapi_dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
        fi
    ) 9>"$openapi_dir/.npm-ci.lock"
fi
