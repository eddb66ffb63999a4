# The command line the quality-table scripts share (sourced by
# scripts/outlier-table.sh and scripts/kv-table.sh, after they set `script`
# to their name): [--text SAMPLED.txt] [--work DIR] [MODEL_DIR] [BUILD_DIR].
# Sets text, work, root, model_dir, build_dir, the tools (compile,
# eval_tool, run, outlier; LATHE_COMPILE, LATHE_EVAL, LATHE_RUN and
# LATHE_OUTLIER_VARIANT override them), model and tokenizer, and defines
# die. Bad arguments: the usage line and exit 1.
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
