#!/usr/bin/env bash
# Installs what the browser tests (__tests__/browser, jest project 'browser') render with: Debian's Chromium,
# and the fonts they measure text in (DejaVu Sans: about as wide as Verdana, the widest font Mermaid asks
# for; Liberation Sans: Arial's widths). Mermaid itself comes from npm (a devDependency).
# Idempotent: installs nothing when all of it is present. Needs root (apt-get) only when something is missing.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/strict.sh
. "$here/lib/strict.sh"
say() { echo "chromium: $*"; }

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
[ -d /usr/share/fonts/truetype/liberation ] || need+=(fonts-liberation)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  quietly "apt-get update" apt-get update -qq
  quietly "installing ${need[*]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# (Debian's wrapper script says "[: unexpected operator" on stderr at each start: harmless.)
say "$(/usr/bin/chromium --version 2>/dev/null)"
