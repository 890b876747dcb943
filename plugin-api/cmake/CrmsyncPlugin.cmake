# crmsync_add_plugin(<target> ID <id> VERSION <semver> [OUTPUT_DIR <dir>]
#                    [INSTALL_DESTINATION <dir>] [NO_INSTALL])
#
# Turns a MODULE library target into a crmsync plugin: hidden visibility, the library named
# after the plugin id, CRMSYNC_PLUGIN_ID and CRMSYNC_PLUGIN_VERSION defined for its sources
# (so the descriptor says what the manifest says, typed once), linked with Boost.JSON (which
# the helpers in crmsync/support/ use), and after every build a plugin manifest
# (<id>.plugin.json) written beside it with the library's sha256, so the host can verify the
# file before opening it.
#
# `cmake --install` puts the library in INSTALL_DESTINATION/<id>/ (default
# lib/crmsync/plugins under the install prefix: where an installed crmsync looks) and writes
# the manifest there again from the installed file, so the sha256 is of the bytes that ship
# (stripped, with --strip or a package's CPACK_STRIP_FILES). NO_INSTALL: no install rule.
# With CRMSYNC_PLUGIN_SIGNING_KEY set to a minisign secret key made without a password
# (`minisign -G -W`), each build and each install also signs the library:
# <library>.minisig, trusted comment "crmsync-plugin <id> <version>" (minisign must be
# installed). With a key that has a password, sign releases by hand instead (docs/plugin-authors.md).
# Used in-tree and, through find_package(crmsync-plugin-api), by out-of-tree plugins.

function(crmsync_add_plugin target)
    cmake_parse_arguments(PARSE_ARGV 1 arg "NO_INSTALL" "ID;VERSION;OUTPUT_DIR;INSTALL_DESTINATION" "")
    if(NOT arg_ID OR NOT arg_VERSION)
        message(FATAL_ERROR "crmsync_add_plugin(${target}): ID and VERSION are required")
    endif()
    if(NOT arg_OUTPUT_DIR)
        set(arg_OUTPUT_DIR "${CMAKE_BINARY_DIR}/plugins")
    endif()
    if(NOT arg_INSTALL_DESTINATION)
        set(arg_INSTALL_DESTINATION "lib/crmsync/plugins")
    endif()
    set(out_dir "${arg_OUTPUT_DIR}/${arg_ID}")
    get_target_property(api_include crmsync::plugin-api INTERFACE_INCLUDE_DIRECTORIES)
    foreach(dir IN LISTS api_include)
        string(REGEX REPLACE "^\\$<BUILD_INTERFACE:(.*)>$" "\\1" dir "${dir}")
        string(REGEX REPLACE "^\\$<INSTALL_INTERFACE:.*>$" "" dir "${dir}")
        if(dir AND EXISTS "${dir}/crmsync/plugin.h")
            set(header "${dir}/crmsync/plugin.h")
        endif()
    endforeach()
    if(NOT header)
        message(FATAL_ERROR "crmsync_add_plugin(${target}): crmsync/plugin.h not found")
    endif()
    file(STRINGS "${header}" major_line REGEX "^#define CRMSYNC_ABI_MAJOR ")
    file(STRINGS "${header}" minor_line REGEX "^#define CRMSYNC_ABI_MINOR ")
    string(REGEX REPLACE ".* ([0-9]+)$" "\\1" abi_major "${major_line}")
    string(REGEX REPLACE ".* ([0-9]+)$" "\\1" abi_minor "${minor_line}")

    target_link_libraries(${target} PRIVATE crmsync::plugin-api Boost::json)
    target_compile_definitions(${target} PRIVATE CRMSYNC_PLUGIN_ID="${arg_ID}" CRMSYNC_PLUGIN_VERSION="${arg_VERSION}")
    set_target_properties(${target} PROPERTIES
        PREFIX ""
        OUTPUT_NAME "${arg_ID}"
        LIBRARY_OUTPUT_DIRECTORY "${out_dir}"
        C_VISIBILITY_PRESET hidden
        CXX_VISIBILITY_PRESET hidden
        VISIBILITY_INLINES_HIDDEN ON)
    set(manifest_args -DID=${arg_ID} -DVERSION=${arg_VERSION} -DABI_MAJOR=${abi_major} -DABI_MINOR=${abi_minor})
    set(write_manifest "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/crmsync_write_manifest.cmake")
    add_custom_command(TARGET ${target} POST_BUILD
        COMMAND "${CMAKE_COMMAND}" "-DLIBRARY=$<TARGET_FILE:${target}>" "-DMANIFEST=${out_dir}/${arg_ID}.plugin.json"
            ${manifest_args} -P "${write_manifest}"
        COMMENT "Writing plugin manifest for ${arg_ID}"
        VERBATIM)
    set(sign_comment "crmsync-plugin ${arg_ID} ${arg_VERSION}")
    if(CRMSYNC_PLUGIN_SIGNING_KEY)
        find_program(CRMSYNC_MINISIGN minisign)
        if(NOT CRMSYNC_MINISIGN)
            message(FATAL_ERROR "CRMSYNC_PLUGIN_SIGNING_KEY is set but minisign is not installed (apt-get install minisign)")
        endif()
        add_custom_command(TARGET ${target} POST_BUILD
            COMMAND "${CRMSYNC_MINISIGN}" -S -s "${CRMSYNC_PLUGIN_SIGNING_KEY}" -m "$<TARGET_FILE:${target}>"
                -x "$<TARGET_FILE:${target}>.minisig" -t "${sign_comment}"
            COMMENT "Signing plugin ${arg_ID}"
            VERBATIM)
    endif()

    if(arg_NO_INSTALL)
        return()
    endif()
    set(install_dir "${arg_INSTALL_DESTINATION}/${arg_ID}")
    list(JOIN manifest_args " " manifest_args_text)
    install(TARGETS ${target} LIBRARY DESTINATION "${install_dir}")
    # Runs after the library is installed (and stripped, if asked): the manifest describes
    # the installed file. DESTDIR and --prefix are read at install time.
    install(CODE "
        set(dir \"${install_dir}\")
        if(NOT IS_ABSOLUTE \"\${dir}\")
            set(dir \"\${CMAKE_INSTALL_PREFIX}/\${dir}\")
        endif()
        set(dir \"\$ENV{DESTDIR}\${dir}\")
        execute_process(COMMAND \"${CMAKE_COMMAND}\" \"-DLIBRARY=\${dir}/$<TARGET_FILE_NAME:${target}>\"
            \"-DMANIFEST=\${dir}/${arg_ID}.plugin.json\" ${manifest_args_text} -P \"${write_manifest}\"
            COMMAND_ERROR_IS_FATAL ANY)
        message(STATUS \"Writing plugin manifest: \${dir}/${arg_ID}.plugin.json\")
        if(NOT \"${CRMSYNC_PLUGIN_SIGNING_KEY}\" STREQUAL \"\")
            execute_process(COMMAND \"${CRMSYNC_MINISIGN}\" -S -s \"${CRMSYNC_PLUGIN_SIGNING_KEY}\"
                -m \"\${dir}/$<TARGET_FILE_NAME:${target}>\" -x \"\${dir}/$<TARGET_FILE_NAME:${target}>.minisig\"
                -t \"${sign_comment}\" OUTPUT_QUIET COMMAND_ERROR_IS_FATAL ANY)
        endif()
    ")
endfunction()
