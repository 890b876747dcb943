#include "library_image.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "digest.h"

namespace crmsync {
namespace {

#if defined(__x86_64__)
constexpr uint16_t kMachine = EM_X86_64;
#elif defined(__aarch64__)
constexpr uint16_t kMachine = EM_AARCH64;
#else
constexpr uint16_t kMachine = EM_NONE;  // not checked
#endif

template <typename T>
bool read_at(std::string_view image, uint64_t offset, T& out) {
    if (offset > image.size() || image.size() - offset < sizeof(T)) return false;
    std::memcpy(&out, image.data() + offset, sizeof(T));
    return true;
}

bool within(std::string_view image, uint64_t offset, uint64_t size) {
    return offset <= image.size() && size <= image.size() - offset;
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

std::string elf_image_problem(std::string_view image) {
    Elf64_Ehdr header;
    if (!read_at(image, 0, header) || std::memcmp(header.e_ident, ELFMAG, SELFMAG) != 0)
        return "not an ELF file (is it the plugin's library?)";
    if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != ELFDATA2LSB)
        return "an ELF file for another kind of machine (not 64-bit little-endian)";
    if (header.e_type != ET_DYN) return "not a shared library (ELF type " + std::to_string(header.e_type) + ")";
    if (kMachine != EM_NONE && header.e_machine != kMachine)
        return "built for another processor (ELF machine " + std::to_string(header.e_machine) + ")";
    if (header.e_phentsize != sizeof(Elf64_Phdr) || header.e_phnum == 0 ||
        !within(image, header.e_phoff, uint64_t{header.e_phnum} * sizeof(Elf64_Phdr)))
        return "its program headers lie outside the file (truncated?)";
    for (uint16_t i = 0; i < header.e_phnum; ++i) {
        Elf64_Phdr segment;
        read_at(image, header.e_phoff + uint64_t{i} * sizeof(Elf64_Phdr), segment);
        // Every byte the dynamic loader maps from the file must be in it: past the end, the
        // first touch of such a page is SIGBUS.
        if ((segment.p_type == PT_LOAD || segment.p_type == PT_DYNAMIC || segment.p_type == PT_NOTE ||
             segment.p_type == PT_GNU_PROPERTY) &&
            !within(image, segment.p_offset, segment.p_filesz))
            return "segment " + std::to_string(i) + " lies past the end of the file (truncated?)";
        if (segment.p_type == PT_LOAD && segment.p_filesz > segment.p_memsz)
            return "segment " + std::to_string(i) + " is malformed";
    }
    return "";
}

Result<SealedImage> verified_library_copy(const std::string& path, const std::string& sha256_hex_expected,
                                          const std::string& name,
                                          const std::function<Status(std::string_view image)>& also_check) {
    constexpr size_t kMaxBytes = 256u << 20;
    int file = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (file < 0) return Status::config("library " + path + " cannot be read: " + errno_text());
    struct stat st {};
    if (fstat(file, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) > kMaxBytes) {
        ::close(file);
        return Status::config("library " + path + " is not a regular file of at most 256 MiB");
    }
    // Read to the end (the size may change under us): these bytes are the ones checked and loaded.
    std::string image;
    image.reserve(static_cast<size_t>(st.st_size));
    char buffer[1 << 16];
    ssize_t n;
    while ((n = ::read(file, buffer, sizeof buffer)) > 0 && image.size() <= kMaxBytes)
        image.append(buffer, static_cast<size_t>(n));
    int read_errno = errno;
    ::close(file);
    if (n < 0) return Status::config("library " + path + " cannot be read: " + std::strerror(read_errno));
    if (image.size() > kMaxBytes) return Status::config("library " + path + " is larger than 256 MiB");

    std::string digest = sha256_hex(image);
    if (digest != sha256_hex_expected)
        return Status::config("sha256 of " + path + " is " + digest + " but the manifest says " + sha256_hex_expected +
                              " (the library changed after it was built; rebuild or reinstall the plugin)");
    if (auto problem = elf_image_problem(image); !problem.empty())
        return Status::config("library " + path + " is " + problem + "; reinstall the plugin");
    if (also_check)
        if (auto checked = also_check(image); !checked) return checked;

    static std::mutex mutex;
    static std::map<std::string, int> copies;  // digest -> sealed memfd, open for the process's life
    std::lock_guard<std::mutex> lock(mutex);
    if (auto it = copies.find(digest); it != copies.end())
        return SealedImage{it->second, "/proc/self/fd/" + std::to_string(it->second)};
    int sealed = memfd_create(("crmsync-plugin-" + name).c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (sealed < 0) return Status::config("cannot make a private copy of " + path + " to load: " + errno_text());
    for (size_t done = 0; done < image.size();) {
        ssize_t w = ::write(sealed, image.data() + done, image.size() - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            std::string why = errno_text();
            ::close(sealed);
            return Status::config("cannot make a private copy of " + path + " to load: " + why);
        }
        done += static_cast<size_t>(w);
    }
    if (fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        std::string why = errno_text();
        ::close(sealed);
        return Status::config("cannot seal the private copy of " + path + ": " + why);
    }
    copies.emplace(digest, sealed);
    return SealedImage{sealed, "/proc/self/fd/" + std::to_string(sealed)};
}

}  // namespace crmsync
