#include "hpc/comm/agree.h"

#include <torch/torch.h>

#include <cstring>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace dancegrpo::hpc {
namespace {

constexpr char kAgreedPayload[] = "dancegrpo.hpc/agreed";

absl::Status Agreed(absl::Status s) {
  s.SetPayload(kAgreedPayload, absl::Cord("1"));
  return s;
}

}  // namespace

absl::Status AgreeOnStatus(const absl::Status& local, Communicator* world) {
  if (world == nullptr || world->size() == 1) return local.ok() ? local : Agreed(local);
  const int n = world->size();
  // The lowest failing rank (n: none).
  auto first = torch::tensor({static_cast<int64_t>(local.ok() ? n : world->rank())}, torch::kInt64);
  if (auto s = world->AllReduce(first, ReduceOp::kMin); !s.ok()) return s;
  const int root = static_cast<int>(first.item<int64_t>());
  if (root == n) return absl::OkStatus();
  // Its code and message, from it to everyone: length first, then the bytes.
  const std::string mine = world->rank() == root ? std::string(local.message()) : std::string();
  auto header = torch::tensor({static_cast<int64_t>(local.code()), static_cast<int64_t>(mine.size())}, torch::kInt64);
  if (auto s = world->Broadcast(header, root); !s.ok()) return s;
  const auto code = static_cast<absl::StatusCode>(header[0].item<int64_t>());
  auto bytes = torch::zeros({header[1].item<int64_t>()}, torch::kUInt8);
  if (world->rank() == root && !mine.empty()) std::memcpy(bytes.data_ptr<uint8_t>(), mine.data(), mine.size());
  if (bytes.numel() > 0)
    if (auto s = world->Broadcast(bytes, root); !s.ok()) return s;
  const std::string message(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), bytes.numel());
  return Agreed(absl::Status(code == absl::StatusCode::kOk ? absl::StatusCode::kUnknown : code,
                             absl::StrCat("rank ", root, " of ", n, ": ", message)));
}

bool IsAgreed(const absl::Status& s) { return !s.ok() && s.GetPayload(kAgreedPayload).has_value(); }

}  // namespace dancegrpo::hpc
