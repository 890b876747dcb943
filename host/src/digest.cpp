#include "digest.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fstream>
#include <memory>
#include <vector>

namespace crmsync {
namespace {
std::string to_hex(const unsigned char* bytes, unsigned int size) {
    static const char digits[] = "0123456789abcdef";
    std::string out(size_t{size} * 2, '\0');
    for (unsigned int i = 0; i < size; ++i) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0xF];
    }
    return out;
}

using MdContext = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

// SHA-256 of a buffer into `digest`; its size. The algorithm fetched once and a context a
// thread: OpenSSL 3 looks the algorithm up and allocates a context on every one-shot digest,
// which cost more than hashing a record's content.
unsigned int sha256(std::string_view data, unsigned char* digest) {
    static EVP_MD* const algorithm = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    thread_local MdContext context(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    unsigned int size = 0;
    if (!algorithm || !context || EVP_DigestInit_ex2(context.get(), algorithm, nullptr) != 1 ||
        EVP_DigestUpdate(context.get(), data.data(), data.size()) != 1 || EVP_DigestFinal_ex(context.get(), digest, &size) != 1)
        EVP_Digest(data.data(), data.size(), digest, &size, EVP_sha256(), nullptr);
    return size;
}
}  // namespace

Result<std::string> sha256_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::io(path + ": cannot be read");
    MdContext ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
        return Status::error(Status::Kind::internal, "OpenSSL could not start a SHA-256 digest");
    std::vector<char> buffer(1 << 16);
    while (in) {
        in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(in.gcount()));
    }
    if (in.bad()) return Status::io(path + ": read failed while hashing");
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx.get(), digest, &size);
    return to_hex(digest, size);
}

std::string sha256_hex(std::string_view data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    return to_hex(digest, sha256(data, digest));
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         digest, &size);
    return to_hex(digest, size);
}

std::string base64url(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<int>(bytes.size()));
    out.resize(static_cast<size_t>(n));
    for (auto& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
    while (!out.empty() && out.back() == '=') out.pop_back();
    return out;
}

std::string sha256_base64url(std::string_view data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    return base64url(std::string_view(reinterpret_cast<const char*>(digest), sha256(data, digest)));
}

}  // namespace crmsync
