#!/usr/bin/env bash
# Everything the project needs on a fresh Linux machine with Java 17+, Maven and Python 3.11+:
# a virtualenv with requirements.txt (with --dev: requirements-dev.txt, for tests, lint, types and the
# benchmark), and the JVM parts of pom.xml. A second run reuses both.
#   --dev       also the development requirements
#   --browser   also Debian's Chromium for the browser tests (implies --dev)
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "error: $*" >&2; exit 2; }

PYTHON=${PYTHON:-python3}
command -v "$PYTHON" >/dev/null || fail "Python 3.11+ is needed and '$PYTHON' is not on PATH"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || fail "Python 3.11+ is needed; '$PYTHON' is $("$PYTHON" --version 2>&1). Set PYTHON=/path/to/python3.11"
command -v java >/dev/null || fail "Java 17+ is needed and 'java' is not on PATH (Debian: apt-get install openjdk-17-jdk-headless)"
java_major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/ *java.specification.version = //p' | cut -d. -f1)
[ "${java_major:-0}" -ge 17 ] || fail "Java 17+ is needed; 'java' is version ${java_major:-unknown}"
command -v javac >/dev/null || fail "a JDK is needed, not only a JRE: 'javac' builds the MongoDB stand-in's launcher (Debian: apt-get install openjdk-17-jdk-headless)"
command -v mvn >/dev/null || fail "Maven is needed to fetch Kafka, Spark's Kafka source and the MongoDB stand-in (apt-get install maven)"

if [ ! -x .venv/bin/python ]; then
  echo "[bootstrap] creating the virtualenv in .venv"
  "$PYTHON" -m venv .venv
fi
requirements=requirements.txt
case " $* " in *" --dev "*|*" --browser "*) requirements=requirements-dev.txt ;; esac
want=$(cat requirements.txt "$requirements" | sha256sum | cut -d' ' -f1)
have=$(cat ".venv/.$requirements.sha256" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  echo "[bootstrap] installing $requirements into .venv (first run: a few minutes)"
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar on -r "$requirements"
  echo "$want" > ".venv/.$requirements.sha256"
fi

echo "[bootstrap] JVM parts (Maven; cached after the first run)"
.venv/bin/python -m stack.jvm

# --browser: Debian's Chromium for the browser tests (Playwright drives it; it downloads no browser).
if [[ " $* " == *" --browser "* ]] && [ ! -x /usr/bin/chromium ]; then
  echo "[bootstrap] installing Chromium from Debian (apt-get install chromium) for the browser tests"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  packages="chromium fonts-noto-color-emoji"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q $packages >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q $packages >/dev/null; } \
    || fail "could not install Chromium; run 'sudo apt-get install chromium' (the browser tests need /usr/bin/chromium)"
fi
