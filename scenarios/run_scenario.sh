#!/usr/bin/env bash
# Runs a scenario through the scenario runner; its exit code is the verdict.
exec "$@"
