#!/usr/bin/env bash
# Installs, from Debian's packages, everything Parley needs to build, test and run.
# Idempotent: runs `apt-get update` only when a package is missing, and prints
# nothing when everything is already installed.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap        # Bazel 4.2.3; see third_party/ for the offline shims
  g++
  libabsl-dev
  libprotobuf-dev
  protobuf-compiler
  libnats-dev            # cnats, the NATS C client
  nats-server
  libleveldb-dev
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
  libsodium-dev          # argon2id password hashing, HMAC-SHA256 token signing
  libjemalloc-dev        # the allocator of the simulator, the benches and parleyd (docs/design-notes.md)
  libxml2-utils          # xmllint: the report tests check the HTML is well-formed
  chromium               # headless: tests/report_screenshot_test renders the HTML reports
  python3-protobuf       # tests/protocol_client_test.py: a client written from docs/protocol.md
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} > 0)); then
  echo "setup.sh: installing ${missing[*]}" >&2
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup.sh: done" >&2
fi
