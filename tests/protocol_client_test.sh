#!/usr/bin/env bash
# Runs tests/protocol_client_test.py (a client written from docs/protocol.md and the
# .proto files alone) with Debian's python3 and protoc against the built parleyd.
set -euo pipefail
exec /usr/bin/python3 tests/protocol_client_test.py "$1" "$PWD" /usr/bin/protoc
