#include "hpc/torch_error.h"

#include <c10/util/Exception.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace dancegrpo::hpc {

std::string ExceptionMessage(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  const std::string text = c10 != nullptr ? c10->what_without_backtrace() : e.what();
  std::string last;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) last = std::string(line);
  }
  return last.empty() ? "(an exception with no message)" : last;
}

}  // namespace dancegrpo::hpc
