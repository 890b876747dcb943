#!/usr/bin/env bash
# The Debian package as an operator and a plugin author meet it, in a fresh root:
#   package.sh deb BUILD_DIR WORK   cpack builds the .deb; it is unpacked into WORK/root
#                                   (nothing installed on this machine) and the demo runs
#                                   from there with the packaged binary and plugins only.
#   package.sh sdk SOURCE_DIR WORK  a plugin copied from the template is built out of tree
#                                   against the packaged SDK (CMAKE_PREFIX_PATH), installed
#                                   stripped into the same root, and run by the packaged crmsync.
set -euo pipefail
mode=$1 dir=$2 work=$3
root="$work/root"
# Only what the package itself holds: no plugin or home from the environment.
unset CRMSYNC_PLUGIN_PATH CRMSYNC_PLUGIN_SYSTEM_PATH CRMSYNC_HOME CRMSYNC_MANIFEST_PATH
fail() { echo "package test: $*" >&2; exit 1; }

case $mode in
deb)
  rm -rf "$work" && mkdir -p "$work"
  (cd "$dir" && cpack -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1) || { cat "$work/cpack.log"; fail "cpack failed"; }
  deb=$(ls "$work"/pkg/crmsync_*.deb)
  dpkg-deb -x "$deb" "$root"
  info=$(dpkg-deb -I "$deb")
  grep -q "^ Depends:.*libcurl4" <<<"$info" || fail "the package names no library dependencies: $info"
  grep -q "postinst" <<<"$info" || fail "the package has no postinst (the crmsync user)"
  grep -qx "ExecStart=/usr/bin/crmsync serve --listen 127.0.0.1:8787" "$root/usr/lib/systemd/system/crmsync.service" ||
    fail "the unit does not start the packaged /usr/bin/crmsync"
  test -f "$root/usr/share/doc/crmsync/README.md" || fail "no README in the package"
  grep -q '^.TH CRMSYNC 1' "$root/usr/share/man/man1/crmsync.1" || fail "no man page in the package"
  test -s "$root/usr/share/bash-completion/completions/crmsync" || fail "no bash completion in the package"
  for plugin in mock-crm salesforce example-jsonl helpdesk-tickets cs-timeline product-analytics feedback-companies; do
    so="$root/usr/lib/crmsync/plugins/$plugin/$plugin.so"
    ! readelf -S "$so" | grep -q '\.symtab' || fail "$so is not stripped"
  done
  "$root/usr/share/crmsync/examples/run-demo" "$work/home" >"$work/demo.out" 2>&1 || { cat "$work/demo.out"; fail "the demo failed"; }
  grep -q "walkme-logins  *product-analytics .* yes  *yes" "$work/demo.out" || { cat "$work/demo.out"; fail "a module is not verified"; }
  grep -q "^cs-timeline: partial — fetched 5, created 4" "$work/demo.out" || { cat "$work/demo.out"; fail "cs-timeline did not run"; }
  grep -q "オンボーディング キックオフ" "$work/demo.out" || { cat "$work/demo.out"; fail "nothing landed in the mock CRM"; }
  # The installed (stripped) plugins are signed again at install: under a trust manifest that
  # requires the build's test key, every one of them verifies.
  cat >"$work/home/manifests/trust.json" <<JSON
{"trust": "plugins", "policy": "require",
 "keys": [{"name": "crmsync test key", "public_key": "RWRMUX//fW7HdbHraX1UpqZJ2XI2epEjxJG/NbgtasegaeirrKy/OJRn"}]}
JSON
  "$root/usr/bin/crmsync" modules --home "$work/home" >"$work/trusted.out" 2>&1 || { cat "$work/trusted.out"; fail "a shipped plugin is not signed by the test key"; }
  test "$(grep -c "trusted (crmsync test key)" "$work/trusted.out")" -ge 5 || { cat "$work/trusted.out"; fail "the shipped plugins are not shown as signed"; }
  echo "the package unpacks into a fresh root and runs the demo from there"
  ;;
sdk)
  test -x "$root/usr/bin/crmsync" || fail "no unpacked package in $root (the deb test sets it up)"
  rm -rf "$work/my-tasks" "$work/my-tasks-build" "$work/sdk-home"
  # What docs/plugin-authors.md tells an author: start from the template, give it an id.
  cp -r "$dir/plugins/sources/example-jsonl" "$work/my-tasks"
  sed -i 's/example-jsonl/my-tasks/g' "$work/my-tasks/CMakeLists.txt"
  cmake -S "$work/my-tasks" -B "$work/my-tasks-build" -G Ninja -DCMAKE_PREFIX_PATH="$root/usr" >"$work/sdk.log" 2>&1 &&
    cmake --build "$work/my-tasks-build" >>"$work/sdk.log" 2>&1 &&
    cmake --install "$work/my-tasks-build" --prefix "$root/usr" --strip >>"$work/sdk.log" 2>&1 ||
    { cat "$work/sdk.log"; fail "the out-of-tree plugin did not build and install"; }
  test -f "$root/usr/lib/crmsync/plugins/my-tasks/my-tasks.plugin.json" || fail "the plugin was not installed beside the shipped ones"
  # It uses the SDK's helpers, which need Boost.JSON: linked by crmsync_add_plugin, not borrowed from the host.
  readelf -d "$root/usr/lib/crmsync/plugins/my-tasks/my-tasks.so" | grep -q 'NEEDED.*libboost_json' ||
    fail "the plugin does not link Boost.JSON itself"

  home="$work/sdk-home"
  mkdir -p "$home/manifests" "$home/in"
  cp "$root/usr/share/crmsync/examples/manifests/mock-crm.json" "$home/manifests/"
  mkdir -p "$home/samples/mock-crm" && cp "$root/usr/share/crmsync/examples/samples/mock-crm/demo-org.json" "$home/samples/mock-crm/"
  cat >"$home/manifests/oot.json" <<JSON
{"module": "oot", "plugin": {"id": "my-tasks", "version": "^1.0"}, "crm": "mock", "isolation": "process",
 "config": {"folder": "\${home}/in", "object": "Task", "key_prefix": "oot", "fields": {"Subject": "subject"}}}
JSON
  echo '{"id": "1", "subject": "built out of tree"}' >"$home/in/a.jsonl"
  crmsync="$root/usr/bin/crmsync"
  "$crmsync" modules --home "$home" --json >"$work/modules.json" || { cat "$work/modules.json"; fail "modules reported a problem"; }
  grep -q '"module":"oot","plugin":"my-tasks","version":"1.1.0","abi":"1.1","enabled":true,"verified":true' "$work/modules.json" ||
    { cat "$work/modules.json"; fail "the installed plugin is not verified"; }
  "$crmsync" run oot --home "$home"
  "$crmsync" crm query "SELECT Subject FROM Task" --home "$home" | grep -q "built out of tree" || fail "the record did not land"
  echo "a plugin built against the packaged SDK installs beside the shipped plugins, verifies and runs isolated"
  ;;
*) fail "unknown mode $mode" ;;
esac
