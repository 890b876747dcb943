# Run with cmake -P after a plugin is linked: writes its plugin manifest (see
# CrmsyncPlugin.cmake). The sha256 is of the library exactly as built.
file(SHA256 "${LIBRARY}" digest)
get_filename_component(library_name "${LIBRARY}" NAME)
file(WRITE "${MANIFEST}" "{
  \"file_format_version\": \"1.0\",
  \"id\": \"${ID}\",
  \"version\": \"${VERSION}\",
  \"abi\": {\"major\": ${ABI_MAJOR}, \"minor\": ${ABI_MINOR}},
  \"library_path\": \"./${library_name}\",
  \"sha256\": \"${digest}\"
}
")
