#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine (run as root or with sudo):
# ffmpeg, nginx, Chromium, VLC, mpv, Node.js; the e2e driver's npm packages; an unprivileged
# user for VLC (it refuses to run as root); and this package with its test and lint extras.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo_=""
[ "$(id -u)" -eq 0 ] || sudo_="sudo"
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v chromium >/dev/null || need+=(chromium)
command -v cvlc >/dev/null || need+=(vlc)
command -v mpv >/dev/null || need+=(mpv)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v runuser >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "$(id -u)" -eq 0 ] && ! id hlsplayer >/dev/null 2>&1; then
  useradd --no-create-home --shell /usr/sbin/nologin hlsplayer
fi
# Installed again when package.json pins another hls.js than the one installed.
hlsjs_wanted=$(sed -n 's/.*"hls.js": "\([^"]*\)".*/\1/p' tests/e2e/package.json)
hlsjs_installed=$(sed -n 's/^  "version": "\([^"]*\)".*/\1/p' \
  tests/e2e/node_modules/hls.js/package.json 2>/dev/null || true)
if [ ! -d tests/e2e/node_modules/playwright-core ] || [ "$hlsjs_wanted" != "$hlsjs_installed" ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --silent)
fi
# Not editable: twistd finds the plugin by scanning sys.path for twisted/plugins/.
python3 -m pip install -q --disable-pip-version-check --force-reinstall --no-deps .
python3 -m pip install -q --disable-pip-version-check ".[test,lint]"
