#pragma once
// Shell completion (bash, zsh) and the man page, generated from the CLI11 definition.
#include <CLI/CLI.hpp>
#include <string>

namespace crmsync::cli {

std::string bash_completion(const CLI::App& app);
std::string zsh_completion(const CLI::App& app);
// roff for man(1): every command and option with its help, then `footer`'s sections
// (a line "Environment:" starts a section; the lines after it are its text).
std::string man_page(const CLI::App& app, const std::string& version, const std::string& footer);

}  // namespace crmsync::cli
