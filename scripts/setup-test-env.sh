#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (run as root or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
sudo_=""
[ "$(id -u)" -eq 0 ] || sudo_="sudo"
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v nginx >/dev/null || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Not editable: twistd finds the plugin by scanning sys.path for twisted/plugins/.
python3 -m pip install -q --disable-pip-version-check --force-reinstall --no-deps .
python3 -m pip install -q --disable-pip-version-check ".[test,lint]"
