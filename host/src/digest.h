#pragma once
// SHA-256 (OpenSSL) of files and buffers, as lowercase hex; HMAC-SHA256 for signatures.
#include <string>
#include <string_view>

#include "status.h"

namespace crmsync {

Result<std::string> sha256_file(const std::string& path);
std::string sha256_hex(std::string_view data);
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

}  // namespace crmsync
