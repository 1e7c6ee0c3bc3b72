#!/usr/bin/env bash
# Idempotent setup: Python environments from the lock files, JVM jars from Maven Central.
# Safe to run again: each step is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# 0. Chromium: the storefront's end-to-end test drives the system's browser through Playwright
#    (which downloads none). Installed before the checks, which fail without it.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    printf '\033[1m==> %s\033[0m\n' "installing chromium from Debian packages (the storefront's browser test)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "warning: could not install chromium" >&2
  fi
fi
bash scripts/check_prereqs.sh

UV_VERSION=0.13.9
py=${PYTHON:-python3}
tools=.cache/tools
uv=$tools/bin/uv

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# 1. uv, pinned, in its own small venv (it resolves from the committed lock files).
if [ ! -x "$uv" ] || [ "$("$uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  step "installing uv $UV_VERSION into $tools"
  "$py" -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
fi

# 2. The main environment (.venv): the core package with every runtime extra.
step "syncing .venv from uv.lock"
"$uv" sync --frozen --all-extras --python "$py" --quiet

# 2b. The data-docs site's Bootstrap / jQuery / Vega / Font Awesome, from npm (GX's pages load them from
#     CDNs, unreachable offline): pinned in lambdarec.quality.docs_site, fetched once into .cache/vendor/docs.
if command -v npm >/dev/null 2>&1; then
  .venv/bin/lambdarec docs vendor >/dev/null || echo "warning: could not vendor the data-docs assets (npm pack failed)" >&2
else
  echo "note: npm not found; the data-docs pages will load their assets from CDNs (apt-get install -y npm)" >&2
fi

# 3. The Flink job's own environment: apache-flink pins apache-beam, which cannot
#    share an environment with the rest.
step "syncing jobs/flink/.venv from jobs/flink/uv.lock"
(cd jobs/flink && "$root/$uv" sync --frozen --python "$py" --quiet)

# 3b. The Pulumi program's own environment: pulumi pins protobuf below the 7 the main env needs.
step "syncing infra/.venv from infra/uv.lock"
(cd infra && "$root/$uv" sync --frozen --python "$py" --quiet)

# 4. JVM artifacts, one classpath folder per profile of jvm/pom.xml.
stamp_of() { sha256sum jvm/pom.xml | cut -c1-16; }
for profile in kafka flink spark; do
  out=.cache/jars/$profile
  if [ -f "$out/.resolved" ] && [ "$(cat "$out/.resolved")" = "$(stamp_of)" ]; then
    continue
  fi
  step "resolving $profile jars from Maven Central into $out"
  rm -rf "$out"
  mvn -q -B -f jvm/pom.xml -P "$profile" dependency:copy-dependencies \
    -DoutputDirectory="$root/$out" -DincludeScope=runtime
  stamp_of > "$out/.resolved"
done
# The speed layer's Java aggregate (jobs/flink/udf), compiled against PyFlink's own jars.
step "building the speed layer's UDF jar (.cache/jars/flink)"
jobs/flink/.venv/bin/python jobs/flink/package.py --udf-jar-only .cache/jars/flink >/dev/null
# 5. redis-server: the prod online store (Feast) is integration-tested against a real one.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing redis-server from Debian packages"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null) \
      || echo "warning: could not install redis-server; the Redis online-store tests will be skipped" >&2
  else
    echo "note: redis-server not found; install it (apt-get install -y redis-server / brew install redis)" \
         "to run the Redis online-store tests" >&2
  fi
fi
step "setup complete"
