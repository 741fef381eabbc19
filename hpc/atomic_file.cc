#include "hpc/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace dancegrpo::hpc {
namespace {

std::string DirOf(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

absl::Status SyncPath(const std::string& path, int flags) {
  const int fd = open(path.c_str(), flags);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) return absl::InternalError(absl::StrCat("fsync ", path, ": ", std::strerror(err)));
  return absl::OkStatus();
}

}  // namespace

std::string TemporaryPathFor(const std::string& path) {
  const auto slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return absl::StrCat(dir, ".", name, ".tmp-", getpid());
}

absl::Status CommitFile(const std::string& tmp, const std::string& path) {
  absl::Status status = SyncPath(tmp, O_RDONLY);
  if (status.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    status = absl::InternalError(absl::StrCat("rename ", tmp, " -> ", path, ": ", std::strerror(errno)));
  }
  if (!status.ok()) {
    std::remove(tmp.c_str());
    return status;
  }
  return SyncPath(DirOf(path), O_RDONLY | O_DIRECTORY);
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  const std::string tmp = TemporaryPathFor(path);
  std::FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (!fp) return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  const bool written = std::fwrite(contents.data(), 1, contents.size(), fp) == contents.size();
  const int err = errno;
  if (std::fclose(fp) != 0 || !written) {
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(written ? errno : err)));
  }
  return CommitFile(tmp, path);
}

absl::Status MakeDirectories(const std::string& dir) {
  std::string cur;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if ((i == dir.size() || dir[i] == '/') && !cur.empty()) {
      if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST)
        return absl::InternalError(absl::StrCat("cannot create the directory ", cur, ": ", std::strerror(errno)));
    }
    if (i < dir.size()) cur.push_back(dir[i]);
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return absl::InternalError(absl::StrCat(dir, " exists but is not a directory"));
  return absl::OkStatus();
}

}  // namespace dancegrpo::hpc
