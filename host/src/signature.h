#pragma once
// minisign-compatible Ed25519 signatures of plugin libraries (<library>.minisig), checked
// with OpenSSL on the very bytes the loader then maps. Both of minisign's forms verify: the
// default ("ED": the signature covers BLAKE2b-512 of the file) and the legacy one ("Ed": the
// file itself). A signature counts for a plugin only when its trusted comment — covered by
// the global signature, so it cannot be edited — reads "crmsync-plugin <id> <version>"
// (anything may follow): a library signed as another plugin, or as another version of this
// one, is not signed for this manifest.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace crmsync {

// One public key an operator trusts, as minisign writes it ("RW..." base64).
struct TrustedKey {
    std::string name;    // the operator's name for it; "" when none
    std::string key_id;  // hex, as minisign prints it (no leading zeros)
    std::string key;     // the 32 raw Ed25519 public key bytes
    std::string origin;  // where it was read from, for messages
};

// Parses a public key: the base64 line ("RWT...") or a whole minisign .pub file's text.
// `origin` names where it came from in the error.
Result<TrustedKey> parse_public_key(std::string_view text, std::string_view origin);

// A .minisig is four short lines; one larger than this is refused as not a signature.
inline constexpr size_t kMaxSignatureFile = 8192;

struct SignatureCheck {
    enum class State {
        none,       // no <library>.minisig
        trusted,    // valid, by a trusted key, for this plugin id and version
        untrusted,  // valid-looking, by a key no trust manifest lists (not verified further)
        invalid,    // malformed, does not verify, or signed for another plugin or version
    };
    State state = State::none;
    std::string key_id;    // the signing key's id, when the file names one
    std::string key_name;  // the trusted key's name, when trusted
    std::string detail;    // why it is invalid
    // One line for `crmsync modules` and messages: "signed by acme (key 6353596B2632D7CB)",
    // "unsigned", "signed by unknown key 6353…", "INVALID: …".
    std::string text() const;
    std::string_view state_name() const;
};

// Checks `signature_text` (a .minisig file's content, or nullopt when there is none) over
// `image` for plugin `id` at `version`.
SignatureCheck check_signature(std::string_view image, const std::optional<std::string>& signature_text, std::string_view id,
                               std::string_view version, const std::vector<TrustedKey>& keys);

}  // namespace crmsync
