#!/usr/bin/env bash
# Install Debian's nginx and docker-compose when missing, for the checks of tests/deploy.
set -euo pipefail

if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    if command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1; then
        exit 0
    fi
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "nginx or docker compose missing and not installable here: tests/deploy will skip them"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# nginx-light: the binary for `nginx -t`; the service is not started.
apt-get install -y -qq --no-install-recommends nginx-light docker-compose >/dev/null
