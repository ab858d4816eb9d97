#!/usr/bin/env bash
# Install the Debian tools some tests drive, when missing:
#   nginx, docker-compose  the production files' checks (tests/deploy, the nginx proxy test)
#   qemu-user              runs llama-server on an emulated x86-64 CPU without AVX-512
#                          (tests/unit/test_local_model.py)
# Where they cannot be installed (not Debian, not root) those tests are skipped.
set -euo pipefail

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 \
    || missing+=(docker-compose)
if [ "$(uname -m)" = x86_64 ]; then
    command -v qemu-x86_64 >/dev/null 2>&1 || missing+=(qemu-user)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing and not installable here: ${missing[*]}; the tests that need them will skip"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# nginx-light: the binary for `nginx -t`; the service is not started.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
