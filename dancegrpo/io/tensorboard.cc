#include "dancegrpo/io/tensorboard.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "dancegrpo/io/images.h"
#include "dancegrpo/io/tensorboard.pb.h"
#include "hpc/atomic_file.h"
#include "hpc/crc32c.h"

namespace dancegrpo {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void AppendLittleEndian(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t LoadLittleEndian(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

}  // namespace

uint32_t Crc32c(const void* data, size_t size) { return hpc::Crc32c(data, size); }

uint32_t MaskCrc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

std::string FrameRecord(const std::string& data) {
  std::string out;
  out.reserve(data.size() + 16);
  AppendLittleEndian(&out, data.size(), 8);
  AppendLittleEndian(&out, MaskCrc(Crc32c(out.data(), 8)), 4);
  out += data;
  AppendLittleEndian(&out, MaskCrc(Crc32c(data.data(), data.size())), 4);
  return out;
}

absl::StatusOr<std::vector<std::string>> ReadRecords(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open the event file ", path));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> records;
  size_t at = 0;
  while (at < bytes.size()) {
    auto bad = [&](const std::string& what) {
      return absl::DataLossError(absl::StrFormat("%s: record %d at byte %d: %s", path, records.size(), at, what));
    };
    if (bytes.size() - at < 12) return bad("truncated length header");
    const uint64_t length = LoadLittleEndian(bytes.data() + at, 8);
    if (MaskCrc(Crc32c(bytes.data() + at, 8)) != LoadLittleEndian(bytes.data() + at + 8, 4))
      return bad("the length's CRC does not match");
    if (bytes.size() - at - 12 < length + 4) return bad(absl::StrCat("truncated: ", length, " bytes of data announced"));
    const char* data = bytes.data() + at + 12;
    if (MaskCrc(Crc32c(data, length)) != LoadLittleEndian(data + length, 4)) return bad("the data's CRC does not match");
    records.emplace_back(data, length);
    at += 12 + length + 4;
  }
  return records;
}

absl::StatusOr<std::unique_ptr<EventWriter>> EventWriter::Create(const std::string& dir) {
  if (auto s = hpc::MakeDirectories(dir); !s.ok()) return s;
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  const std::string path =
      absl::StrFormat("%s/events.out.tfevents.%d.%s.%d", dir, static_cast<int64_t>(Now()), host, getpid());
  std::FILE* file = std::fopen(path.c_str(), "ab");
  if (!file) return absl::InternalError(absl::StrCat("cannot create the event file ", path, ": ", std::strerror(errno)));
  std::unique_ptr<EventWriter> writer(new EventWriter(path, file));
  tensorboard::Event event;
  event.set_wall_time(Now());
  event.set_file_version("brain.Event:2");
  if (auto s = writer->Write(event.SerializeAsString()); !s.ok()) return s;
  if (auto s = writer->Flush(); !s.ok()) return s;
  return writer;
}

EventWriter::~EventWriter() {
  if (file_) std::fclose(file_);
}

absl::Status EventWriter::Write(const std::string& event) {
  const std::string record = FrameRecord(event);
  if (std::fwrite(record.data(), 1, record.size(), file_) != record.size())
    return absl::InternalError(absl::StrCat("cannot append to the event file ", path_, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::Status EventWriter::AddScalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars) {
  tensorboard::Event event;
  event.set_wall_time(Now());
  event.set_step(step);
  for (const auto& [tag, value] : scalars) {
    auto* v = event.mutable_summary()->add_value();
    v->set_tag(tag);
    v->set_simple_value(static_cast<float>(value));
  }
  return Write(event.SerializeAsString());
}

absl::Status EventWriter::AddImage(int64_t step, const std::string& tag, const torch::Tensor& rgb) {
  auto png = EncodePng(rgb);
  if (!png.ok()) return png.status();
  tensorboard::Event event;
  event.set_wall_time(Now());
  event.set_step(step);
  auto* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  auto* image = v->mutable_image();
  image->set_height(static_cast<int32_t>(rgb.size(0)));
  image->set_width(static_cast<int32_t>(rgb.size(1)));
  image->set_colorspace(3);
  image->set_encoded_image_string(std::move(*png));
  return Write(event.SerializeAsString());
}

absl::Status EventWriter::Flush() {
  if (std::fflush(file_) != 0)
    return absl::InternalError(absl::StrCat("cannot write the event file ", path_, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

}  // namespace dancegrpo
