#!/usr/bin/env bash
# Fills the npm cache with everything a global install of agent-pool's packed tarball
# resolves (the registry's metadata and the dependencies' tarballs), so that the
# packed-install test installs with --offline: its traffic stays on this machine.
# Run by .ci/run after `npm ci`; by hand before `npx vitest run test/install`.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tarball=$(npm pack --ignore-scripts --pack-destination "$work" --silent)
# --ignore-scripts: nothing is compiled here, only downloaded (the test compiles).
npm install --global --prefix "$work/prefix" --ignore-scripts --prefer-offline --no-audit --no-fund --silent "$work/$tarball"
