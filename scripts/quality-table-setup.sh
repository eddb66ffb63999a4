# What the quality-table scripts share (sourced by scripts/outlier-table.sh
# and scripts/kv-table.sh, after they set `script` to their name): the
# command line [--text SAMPLED.txt] [--work DIR] [MODEL_DIR] [BUILD_DIR],
# the checks of its files and tools, and the work folder. Sets text, work
# (a temporary folder, removed on exit, unless --work), root, model_dir,
# build_dir, the tools (compile, eval_tool, run, outlier; LATHE_COMPILE,
# LATHE_EVAL, LATHE_RUN and LATHE_OUTLIER_VARIANT override them), model and
# tokenizer, and defines die and log. Bad arguments, a missing file or
# tool: one line and exit 1.
usage="usage: scripts/$script [--text SAMPLED.txt] [--work DIR] [MODEL_DIR] [BUILD_DIR]"
die() { echo "$script: $*" >&2; exit 1; }

text=
work=
positional=()
while [ $# -gt 0 ]; do
  case $1 in
    --text) [ $# -ge 2 ] || die "$usage"; text=$2; shift 2 ;;
    --text=*) text=${1#--text=}; shift ;;
    --work) [ $# -ge 2 ] || die "$usage"; work=$2; shift 2 ;;
    --work=*) work=${1#--work=}; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) die "$usage" ;;
    *) positional+=("$1"); shift ;;
  esac
done
[ "${#positional[@]}" -le 2 ] || die "$usage"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
model_dir=${positional[0]:-$HOME/.cache/lathe/models/stories15M}
build_dir=${positional[1]:-$root/build}
compile=${LATHE_COMPILE:-$build_dir/bin/lathe-compile}
eval_tool=${LATHE_EVAL:-$build_dir/bin/lathe-eval}
run=${LATHE_RUN:-$build_dir/bin/lathe-run}
outlier=${LATHE_OUTLIER_VARIANT:-$build_dir/bin/lathe-outlier-variant}
model=$model_dir/stories15M.bin
tokenizer=$model_dir/tokenizer.bin

for f in "$model" "$tokenizer" ${text:+"$text"}; do
  [ -f "$f" ] || die "$f: no such file"
done
for tool in "$compile" "$eval_tool" "$run" "$outlier"; do
  [ -x "$tool" ] || die "$tool: not an executable (build it, or set LATHE_COMPILE / LATHE_EVAL / LATHE_RUN / LATHE_OUTLIER_VARIANT)"
done
if [ -n "$work" ]; then
  mkdir -p "$work" || die "$work: cannot create it"
  work=$(cd "$work" && pwd)
else
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
log() { echo "$script: $*" >&2; }
