#!/usr/bin/env bash
# Install Debian's headless-capable chromium and its WebDriver (chromium, chromium-driver) for the
# user-study browser test (tests/test_userstudy_browser.py). Idempotent: returns at once when both are
# installed. Needs root and apt (Debian 12); prints the chromium and chromedriver paths on success.
set -euo pipefail

PACKAGES=(chromium chromium-driver)

log() { printf '[install_chromium.sh] %s\n' "$*" >&2; }

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    [[ $(id -u) -eq 0 ]] || { log "ERROR: installing ${missing[*]} needs root (apt-get)"; exit 1; }
    command -v apt-get >/dev/null || { log "ERROR: apt-get not found: install ${missing[*]} by hand"; exit 1; }
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # refresh the package lists only when they are missing or the first install attempt fails
    compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || apt-get update -qq
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        log "install failed; retrying after apt-get update"
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi
command -v chromium
command -v chromedriver
