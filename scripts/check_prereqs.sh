#!/usr/bin/env bash
# Fail at once, naming the fix, when a tool lambdarec needs is missing.
set -euo pipefail
problems=()

py=${PYTHON:-python3}
if ! command -v "$py" >/dev/null 2>&1; then
  problems+=("python3 (3.11 or 3.12) not found: install it (Debian: apt-get install -y python3 python3-venv) or set PYTHON=/path/to/python3.11")
elif ! "$py" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] <= (3, 12) else 1)'; then
  problems+=("$("$py" -V 2>&1) found; lambdarec needs Python 3.11 or 3.12 (set PYTHON=/path/to/python3.11)")
elif ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  problems+=("$py cannot create virtual environments: apt-get install -y python3-venv")
fi

java_bin=${JAVA_HOME:+$JAVA_HOME/bin/}java
if ! command -v "$java_bin" >/dev/null 2>&1; then
  problems+=("java not found: install JDK 17+ (Debian/Ubuntu: apt-get install -y openjdk-17-jdk-headless; macOS: brew install openjdk@17) or set JAVA_HOME")
else
  major=$("$java_bin" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  if [ -z "$major" ] || [ "$major" -lt 17 ]; then
    problems+=("java ${major:-?} found; Kafka 4 and Flink 2 need JDK 17+: apt-get install -y openjdk-17-jdk-headless, or point JAVA_HOME at a JDK 17+")
  fi
fi

if ! command -v mvn >/dev/null 2>&1; then
  problems+=("mvn (Maven 3.8+) not found: it resolves the Kafka/Flink/Spark jars from Maven Central. Install it: apt-get install -y maven (macOS: brew install maven)")
fi

# The storefront's end-to-end test drives Chromium through Playwright, which downloads no browser.
if [ -n "${CHROMIUM:-}" ]; then
  [ -x "$CHROMIUM" ] || problems+=("CHROMIUM=$CHROMIUM is not an executable: point it at a Chromium binary or unset it")
elif ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  problems+=("chromium not found: the storefront's browser test drives it. Install it: apt-get install -y chromium (macOS: brew install --cask chromium) or set CHROMIUM=/path/to/chromium")
fi

if [ ${#problems[@]} -gt 0 ]; then
  echo "lambdarec setup cannot continue:" >&2
  for p in "${problems[@]}"; do echo "  - $p" >&2; done
  exit 2
fi
