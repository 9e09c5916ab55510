// Where a console sink writes: a stream it borrows (stdout, or an in-memory stream in tests) or a
// file it opened itself. Header-only because it is tiny and shared by both console sinks.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

namespace hoptrace {

class OutputFile {
 public:
  // Does not take ownership; `out` must outlive this object.
  static OutputFile Borrow(std::FILE* out) { return OutputFile(out, nullptr); }

  // Opens `path` for append, line-buffered. Throws std::runtime_error at start-up so the CLI can
  // tell the user which path failed and why.
  static OutputFile OpenForAppend(const std::filesystem::path& path) {
    // "e" = O_CLOEXEC: the agent may spawn helpers, which must not inherit our output file.
    std::FILE* f = std::fopen(path.c_str(), "ae");
    if (f == nullptr) {
      throw std::runtime_error("cannot open output file '" + path.string() +
                               "' for append: " + std::strerror(errno));
    }
    // Line buffering makes each span line reach the file as a whole, so a reader tailing it
    // never sees half a line even between our explicit flushes.
    std::setvbuf(f, nullptr, _IOLBF, 0);
    return OutputFile(f, f);
  }

  std::FILE* get() const { return out_; }

  // Writes all of `text` and flushes. Returns false on any error (disk full, closed pipe, ...).
  bool WriteAndFlush(const std::string& text) const {
    bool ok = text.empty() || std::fwrite(text.data(), 1, text.size(), out_) == text.size();
    return std::fflush(out_) == 0 && ok;
  }

 private:
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  OutputFile(std::FILE* out, std::FILE* owned) : out_(out), owned_(owned) {}

  std::FILE* out_;
  std::unique_ptr<std::FILE, Closer> owned_;
};

}  // namespace hoptrace
