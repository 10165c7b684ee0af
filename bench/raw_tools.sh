#!/usr/bin/env bash
# An independent check of bench/run.py's import_ratio and sync_ratio: the raw tools and extadmin's
# own commands on one package, timed by bash's `time` alone, with nothing of bench/run.py's
# timing, alternation or medians. The database half is bench/raw_pg.py's COPY into and out of a
# table shaped like the archive's chunks (psql's own \lo_import and \lo_export are no floor:
# 5.5 and 3.6 s for 197 MB against COPY's 1.2-1.4 and 0.9 s).
#
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/DB bench/raw_tools.sh PACKAGE.zip [RUNS]
#
# DATABASE_URL names a migrated extadmin database that nothing else uses (its package of the
# same name is deleted and imported RUNS times; bench/run.py --keep leaves one, with the package
# it timed). Prints each step's median of RUNS, the two sums and extadmin's two ratios against them.
set -euo pipefail
cd "$(dirname "$0")/.."
zip=$(realpath "$1")
runs=${2:-5}
: "${DATABASE_URL:?DATABASE_URL: a migrated extadmin database on PostgreSQL}"
py=.venv/bin/python
work=$(mktemp -d "${TMPDIR:-/tmp}/extadmin-raw-tools-XXXXXX")
trap 'rm -rf "$work"' EXIT
name=$(unzip -p "$zip" metadata.xml | sed -n 's/.*<ExtensionPackage[^>]* name="\([^"]*\)".*/\1/p' | head -1)
[ -n "$name" ] || { echo "raw_tools: no package name in $zip's metadata.xml" >&2; exit 2; }
export DJANGO_SETTINGS_MODULE=extadmin.settings DJANGO_DEBUG=0 EXTADMIN_VAR="$work/var" \
  CELERY_BROKER_URL="${CELERY_BROKER_URL:-redis://127.0.0.1:6379/0}"
TIMEFORMAT=%R

# Wall seconds of one command, its output dropped; PostgreSQL's dirty pages flushed first, so no
# checkpoint lands inside it.
t() { psql "$DATABASE_URL" -qc CHECKPOINT; { time "$@" >/dev/null 2>&1 ; } 2>&1; }
pg=postgresql://${DATABASE_URL#*://}

declare -A samples
add() { samples[$1]="${samples[$1]:-} $2"; }
med() { tr ' ' '\n' <<<"${samples[$1]}" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for ((i = 0; i < runs; i++)); do
  rm -rf "$work/raw" "$work/import" "$work/sync" && mkdir -p "$work/raw" "$work/import" "$work/sync"
  sync
  add sha256sum "$(t sha256sum "$zip")"
  add unzip "$(t unzip -q "$zip" -d "$work/raw/x")"
  psql "$DATABASE_URL" -qc "DROP TABLE IF EXISTS bench_raw_chunks"
  add copy_in "$(t $py bench/raw_pg.py in "$pg" "$zip")"
  add copy_out "$(t $py bench/raw_pg.py out "$pg" "$work/raw/out.zip")"
  add sha256sum_out "$(t sha256sum "$work/raw/out.zip")"
  add unzip_out "$(t unzip -q "$work/raw/out.zip" -d "$work/raw/y")"

  EXTADMIN_NODE=raw-tools-delete EXTADMIN_STORAGE="$work/delete" $py manage.py delete_extension "$name" >/dev/null 2>&1 || true
  sync
  add import "$(EXTADMIN_NODE=raw-tools-importer EXTADMIN_STORAGE="$work/import" t $py manage.py import_extension "$zip")"
  [ -f "$work/import/extensions/$name/$name.chk" ] || { echo "raw_tools: the import of $zip did not install it" >&2; exit 1; }
  node=raw-tools-node-$i  # a new node each time, as bench/run.py's
  add sync_node "$(EXTADMIN_NODE=$node EXTADMIN_STORAGE="$work/sync" \
    t $py manage.py sync_node --name "$node" --storage "$work/sync")"
  [ -f "$work/sync/extensions/$name/$name.chk" ] || { echo "raw_tools: sync_node did not install $name" >&2; exit 1; }
done
for ((i = 0; i < runs; i++)); do
  EXTADMIN_NODE=raw-tools-node-$i $py manage.py forget_node "raw-tools-node-$i" --force >/dev/null 2>&1 || true
done
psql "$DATABASE_URL" -qc "DROP TABLE IF EXISTS bench_raw_chunks"

raw_in=$(awk "BEGIN {print $(med sha256sum) + $(med unzip) + $(med copy_in)}")
raw_out=$(awk "BEGIN {print $(med copy_out) + $(med sha256sum_out) + $(med unzip_out)}")
echo "# $(basename "$zip"), $(du -m "$zip" | cut -f1) MB, medians of $runs runs (s), load average $(cut -d' ' -f1 /proc/loadavg)"
echo "raw in:  sha256sum $(med sha256sum) + unzip $(med unzip) + COPY in $(med copy_in) = $raw_in"
echo "import_extension $(med import)   import_ratio $(awk "BEGIN {printf \"%.3f\", $(med import) / $raw_in}")"
echo "raw out: COPY out $(med copy_out) + sha256sum $(med sha256sum_out) + unzip $(med unzip_out) = $raw_out"
echo "sync_node $(med sync_node)   sync_ratio $(awk "BEGIN {printf \"%.3f\", $(med sync_node) / $raw_out}")"
