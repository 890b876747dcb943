#include "signature.h"

#include <openssl/evp.h>

#include <algorithm>
#include <memory>

namespace crmsync {
namespace {

constexpr size_t kKeyIdBytes = 8;
constexpr size_t kPublicKeyBytes = 32;
constexpr size_t kSignatureBytes = 64;
constexpr std::string_view kTrustedPrefix = "trusted comment: ";
constexpr std::string_view kUntrustedPrefix = "untrusted comment: ";

// Standard base64 with padding, as minisign writes it; nullopt when it is not that.
std::optional<std::string> base64_decode(std::string_view text) {
    if (text.empty() || text.size() % 4 != 0 || text.size() > 4096) return std::nullopt;
    std::string out(text.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(text.data()),
                            static_cast<int>(text.size()));
    if (n < 0) return std::nullopt;
    size_t padding = text.ends_with("==") ? 2 : text.ends_with("=") ? 1 : 0;
    out.resize(static_cast<size_t>(n) - padding);
    return out;
}

// minisign prints a key id as the little-endian 64-bit number its 8 bytes make, in hex
// without leading zeros (printf's %PRIX64): the same text here, so ids match its output.
std::string key_id_text(std::string_view id_bytes) {
    static const char* digits = "0123456789ABCDEF";
    std::string out;
    for (size_t i = id_bytes.size(); i-- > 0;) {
        auto b = static_cast<unsigned char>(id_bytes[i]);
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    size_t first = std::min(out.find_first_not_of('0'), out.size() - 1);
    return out.substr(first);
}

std::vector<std::string_view> lines_of(std::string_view text) {
    std::vector<std::string_view> out;
    while (!text.empty()) {
        size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        if (line.ends_with('\r')) line.remove_suffix(1);
        out.push_back(line);
        if (end == std::string_view::npos) break;
        text.remove_prefix(end + 1);
    }
    return out;
}

bool ed25519_verify(std::string_view public_key, std::string_view signature, std::string_view message) {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_key.data()),
                                    public_key.size()),
        EVP_PKEY_free);
    if (!key) return false;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) return false;
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                            reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
}

std::optional<std::string> blake2b512(std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (EVP_Digest(data.data(), data.size(), out, &size, EVP_blake2b512(), nullptr) != 1 || size != 64) return std::nullopt;
    return std::string(reinterpret_cast<char*>(out), size);
}

}  // namespace

Result<TrustedKey> parse_public_key(std::string_view text, std::string_view origin) {
    // A .pub file: an untrusted comment line, then the key line. A bare key: just the line.
    std::string_view line;
    for (auto l : lines_of(text)) {
        if (l.empty() || l.starts_with(kUntrustedPrefix)) continue;
        line = l;
        break;
    }
    auto bytes = base64_decode(line);
    if (!bytes || bytes->size() != 2 + kKeyIdBytes + kPublicKeyBytes || bytes->substr(0, 2) != "Ed")
        return Status::config(std::string(origin) +
                              ": not a minisign public key (expected the \"RW...\" line `minisign -G` writes to its .pub file)");
    TrustedKey key;
    key.key_id = key_id_text(std::string_view(*bytes).substr(2, kKeyIdBytes));
    key.key = bytes->substr(2 + kKeyIdBytes);
    key.origin = std::string(origin);
    return key;
}

std::string_view SignatureCheck::state_name() const {
    switch (state) {
        case State::none: return "unsigned";
        case State::trusted: return "trusted";
        case State::untrusted: return "untrusted";
        case State::invalid: return "invalid";
    }
    return "invalid";
}

std::string SignatureCheck::text() const {
    switch (state) {
        case State::none: return "unsigned";
        case State::trusted: return "signed by " + (key_name.empty() ? "a trusted key" : key_name) + " (key " + key_id + ")";
        case State::untrusted: return "signed by key " + key_id + ", which no trust manifest lists";
        case State::invalid: return "INVALID signature: " + detail;
    }
    return "";
}

SignatureCheck check_signature(std::string_view image, const std::optional<std::string>& signature_text, std::string_view id,
                               std::string_view version, const std::vector<TrustedKey>& keys) {
    SignatureCheck check;
    if (!signature_text) return check;
    auto invalid = [&](std::string why) {
        check.state = SignatureCheck::State::invalid;
        check.detail = std::move(why);
        return check;
    };
    if (signature_text->size() > kMaxSignatureFile) return invalid("the .minisig file is larger than 8 KiB");
    auto lines = lines_of(*signature_text);
    if (lines.size() < 4 || !lines[0].starts_with(kUntrustedPrefix) || !lines[2].starts_with(kTrustedPrefix))
        return invalid(
            "not a minisign signature (expected four lines: untrusted comment, signature, trusted comment, "
            "global signature)");
    auto signature = base64_decode(lines[1]);
    if (!signature || signature->size() != 2 + kKeyIdBytes + kSignatureBytes)
        return invalid("the signature line is not a minisign signature");
    std::string algorithm = signature->substr(0, 2);
    if (algorithm != "Ed" && algorithm != "ED") return invalid("unknown signature algorithm \"" + algorithm + "\"");
    check.key_id = key_id_text(std::string_view(*signature).substr(2, kKeyIdBytes));
    const TrustedKey* key = nullptr;
    for (const auto& k : keys)
        if (k.key_id == check.key_id) key = &k;
    if (!key) {
        check.state = SignatureCheck::State::untrusted;
        return check;
    }
    std::string_view sig = std::string_view(*signature).substr(2 + kKeyIdBytes);
    std::optional<std::string> prehashed;
    if (algorithm == "ED" && !(prehashed = blake2b512(image))) return invalid("BLAKE2b-512 is not available in this OpenSSL");
    if (!ed25519_verify(key->key, sig, prehashed ? std::string_view(*prehashed) : image))
        return invalid("the library's bytes do not match the signature by key " + check.key_id +
                       " (the file changed after it was signed, or it was signed by another key with the same id)");
    std::string_view comment = lines[2].substr(kTrustedPrefix.size());
    auto global = base64_decode(lines[3]);
    if (!global || global->size() != kSignatureBytes ||
        !ed25519_verify(key->key, *global, std::string(sig) + std::string(comment)))
        return invalid("the trusted comment does not match its signature (it was edited)");
    std::string expected = "crmsync-plugin " + std::string(id) + " " + std::string(version);
    if (comment != expected && !comment.starts_with(expected + " "))
        return invalid("signed as \"" + std::string(comment).substr(0, 120) + "\", not as \"" + expected +
                       "\" (sign with: minisign -S -t \"" + expected + "\" -m <library>)");
    check.state = SignatureCheck::State::trusted;
    check.key_name = key->name;
    return check;
}

}  // namespace crmsync
