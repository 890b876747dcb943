#!/usr/bin/env bash
# Installs the plugin API package into a scratch prefix, builds the example plugin out of
# tree against it (find_package(crmsync-plugin-api)), and has crmsync load the result.
set -euo pipefail
source_dir=$1 build_dir=$2 crmsync=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build_dir/plugin-api" --prefix "$work/prefix" >/dev/null
cmake -S "$source_dir/plugins/sources/example-jsonl" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/build" >/dev/null
test -f "$work/build/plugins/example-jsonl/example-jsonl.plugin.json"
test -f "$work/prefix/share/crmsync/schemas/operation.schema.json"

mkdir -p "$work/home/manifests" "$work/home/in"
cat > "$work/home/manifests/crm.json" <<JSON
{"connection": "mock", "plugin": {"id": "mock-crm"}, "config": {"database": "$work/home/var/crm.db",
 "schema": {"Task": {"fields": {"CrmSync_Key__c": {"type": "string", "external_id": true}}}}}}
JSON
cat > "$work/home/manifests/oot.json" <<JSON
{"module": "oot", "plugin": {"id": "example-jsonl", "version": "^1.0"}, "crm": "mock",
 "config": {"folder": "$work/home/in", "object": "Task", "fields": {"Subject": "subject"}}}
JSON
echo '{"id": "1", "subject": "built out of tree"}' > "$work/home/in/a.jsonl"
# Only the out-of-tree build of example-jsonl is on the path (the CRM comes from the tree).
mkdir -p "$work/crm-plugins"
cp -r "$build_dir/lib/crmsync/plugins/mock-crm" "$work/crm-plugins/"
export CRMSYNC_PLUGIN_PATH="$work/build/plugins:$work/crm-plugins"
"$crmsync" modules --home "$work/home" --json | grep -q '"module":"oot","plugin":"example-jsonl","version":"1.1.0","abi":"1.1","enabled":true,"verified":true'
"$crmsync" run oot --home "$work/home"
"$crmsync" crm query "SELECT Subject FROM Task" --home "$work/home" | grep -q "built out of tree"
echo "out-of-tree plugin built, verified, loaded and ran"
