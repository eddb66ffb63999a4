#!/usr/bin/env bash
# Fetches OpenAI's official Node.js client (the npm package `openai`, no
# dependencies of its own) into DIR/openai-VERSION/package and checks the
# tarball's sha256. The load test of lathe-serve (test/load/openai-load.mjs)
# drives the server with it.
set -euo pipefail
dest=${1:?usage: fetch-openai-client.sh DIR}
version=5.23.2
sum=a2aa74ff8be1a80a215af201a3d2228e999464d166c1eaec2c9ca313395fbef1
target="$dest/openai-$version"
[ -f "$target/package/index.mjs" ] && exit 0
work=$(mktemp -d)
echo "fetching openai@$version from the npm registry into $target"
(cd "$work" && npm pack --silent "openai@$version" >/dev/null)
echo "$sum  $work/openai-$version.tgz" | sha256sum --check --status ||
  { echo "fetch-openai-client: openai-$version.tgz has the wrong sha256" >&2; rm -rf "$work"; exit 1; }
mkdir -p "$target"
tar xzf "$work/openai-$version.tgz" -C "$target"
rm -rf "$work"
