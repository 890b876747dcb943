// Plugin signatures checked against what the real minisign writes: both of its signature
// forms, and every way a signature can fail to vouch for a library.
#include <catch2/catch.hpp>

#include "signature.h"
#include "test_support.h"

using namespace crmsync;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

namespace {

// A minisign key pair made by minisign itself (no password), and its parsed public key.
struct Signer {
    TempDir dir;
    TrustedKey key;
    Signer() {
        auto made = testing::run_command({CRMSYNC_MINISIGN, "-G", "-W", "-p", dir / "k.pub", "-s", dir / "k.key"});
        REQUIRE(made.status == 0);
        auto parsed = parse_public_key(read_file(dir / "k.pub"), "k.pub");
        REQUIRE(parsed);
        key = parsed.value();
        key.name = "acme";
    }
    // Signs `bytes` as minisign does (legacy: the pre-0.8 form over the file itself).
    std::string sign(const std::string& bytes, const std::string& comment, bool legacy = false) {
        write_file(dir / "lib.so", bytes);
        std::vector<std::string> argv{CRMSYNC_MINISIGN, "-S", "-s", dir / "k.key", "-m", dir / "lib.so", "-t", comment};
        if (legacy) argv.push_back("-l");
        auto signed_ = testing::run_command(argv);
        REQUIRE(signed_.status == 0);
        return read_file(dir / "lib.so.minisig");
    }
};

const std::string kLibrary = std::string(
                                 "\x7f"
                                 "ELF pretend library bytes ") +
                             std::string(100000, 'x');

}  // namespace

TEST_CASE("signature: minisign's default (BLAKE2b-prehashed) and legacy signatures verify for the plugin they name") {
    Signer s;
    bool legacy = GENERATE(false, true);
    auto sig = s.sign(kLibrary, "crmsync-plugin cs-timeline 1.1.0", legacy);
    auto check = check_signature(kLibrary, sig, "cs-timeline", "1.1.0", {s.key});
    INFO(check.text());
    CHECK(check.state == SignatureCheck::State::trusted);
    CHECK(check.key_id == s.key.key_id);
    CHECK(check.text() == "signed by acme (key " + s.key.key_id + ")");
    // More text after the plugin's name and version is allowed.
    auto dated = s.sign(kLibrary, "crmsync-plugin cs-timeline 1.1.0 built 2026-11-24", legacy);
    CHECK(check_signature(kLibrary, dated, "cs-timeline", "1.1.0", {s.key}).state == SignatureCheck::State::trusted);
}

TEST_CASE("signature: the key id is the one minisign prints, leading zeros left out as it leaves them") {
    // One key in 16 has an id starting with a zero: make keys until one does (or 200 tried).
    bool met_leading_zero = false;
    for (int i = 0; i < 200 && !met_leading_zero; ++i) {
        Signer s;
        std::string pub = read_file(s.dir / "k.pub");
        CHECK_THAT(pub, Catch::Contains("minisign public key " + s.key.key_id + "\n"));
        met_leading_zero = s.key.key_id.size() < 16;
    }
    CHECK(met_leading_zero);
}

TEST_CASE("signature: a changed byte, another plugin's or version's comment, an edited comment are invalid") {
    Signer s;
    auto sig = s.sign(kLibrary, "crmsync-plugin cs-timeline 1.1.0");
    std::string tampered = kLibrary;
    tampered[5000] ^= 1;
    auto changed = check_signature(tampered, sig, "cs-timeline", "1.1.0", {s.key});
    CHECK(changed.state == SignatureCheck::State::invalid);
    CHECK_THAT(changed.detail, Catch::Contains("do not match the signature"));

    auto other_plugin = check_signature(kLibrary, sig, "helpdesk-tickets", "1.1.0", {s.key});
    CHECK(other_plugin.state == SignatureCheck::State::invalid);
    CHECK_THAT(other_plugin.detail, Catch::Contains("not as \"crmsync-plugin helpdesk-tickets 1.1.0\""));
    CHECK(check_signature(kLibrary, sig, "cs-timeline", "1.1.1", {s.key}).state == SignatureCheck::State::invalid);
    // A prefix is not the version: 1.1.0 must not vouch for 1.1.01.
    auto prefix = s.sign(kLibrary, "crmsync-plugin cs-timeline 1.1.01");
    CHECK(check_signature(kLibrary, prefix, "cs-timeline", "1.1.0", {s.key}).state == SignatureCheck::State::invalid);

    std::string edited = sig;
    edited.replace(edited.find("cs-timeline 1.1.0"), 17, "cs-timeline 9.9.9");
    auto forged = check_signature(kLibrary, edited, "cs-timeline", "9.9.9", {s.key});
    CHECK(forged.state == SignatureCheck::State::invalid);
    CHECK_THAT(forged.detail, Catch::Contains("trusted comment does not match"));
}

TEST_CASE("signature: unsigned, an unlisted key and garbage are told apart") {
    Signer s, stranger;
    auto sig = stranger.sign(kLibrary, "crmsync-plugin p 1.0.0");
    CHECK(check_signature(kLibrary, std::nullopt, "p", "1.0.0", {s.key}).state == SignatureCheck::State::none);
    auto unknown = check_signature(kLibrary, sig, "p", "1.0.0", {s.key});
    CHECK(unknown.state == SignatureCheck::State::untrusted);
    CHECK(unknown.key_id == stranger.key.key_id);
    CHECK_THAT(unknown.text(), Catch::Contains("which no trust manifest lists"));
    for (std::string garbage : {std::string(""), std::string("hello\n"), std::string(20000, 'A'),
                                std::string("untrusted comment: x\nRWQ!!!!\ntrusted comment: y\nzzzz\n")})
        CHECK(check_signature(kLibrary, garbage, "p", "1.0.0", {s.key}).state == SignatureCheck::State::invalid);
}

TEST_CASE("signature: public keys parse from a .pub file or its key line, and anything else is refused by name") {
    Signer s;
    std::string pub = read_file(s.dir / "k.pub");
    std::string line = pub.substr(pub.find('\n') + 1);
    auto from_line = parse_public_key(line, "inline");
    REQUIRE(from_line);
    CHECK(from_line->key_id == s.key.key_id);
    CHECK(from_line->key == s.key.key);
    auto bad = parse_public_key("not a key", "manifests/trust.json: \"keys\"[0]");
    REQUIRE_FALSE(bad);
    CHECK_THAT(bad.status().message(), Catch::StartsWith("manifests/trust.json: \"keys\"[0]: not a minisign public key"));
}
