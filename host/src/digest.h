#pragma once
// SHA-256 (OpenSSL) of files and buffers, as lowercase hex; HMAC-SHA256 for signatures;
// base64url for OAuth's PKCE.
#include <string>
#include <string_view>

#include "status.h"

namespace crmsync {

Result<std::string> sha256_file(const std::string& path);
std::string sha256_hex(std::string_view data);
std::string hmac_sha256_hex(std::string_view key, std::string_view data);
// RFC 4648 base64url, unpadded.
std::string base64url(std::string_view bytes);
// base64url(SHA-256(data)): a PKCE S256 code challenge.
std::string sha256_base64url(std::string_view data);

}  // namespace crmsync
