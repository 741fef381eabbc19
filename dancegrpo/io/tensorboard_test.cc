#include "dancegrpo/io/tensorboard.h"

#include <dirent.h>
#include <png.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "dancegrpo/io/tensorboard.pb.h"
#include "gtest/gtest.h"

namespace dancegrpo {
namespace {

// Bit-at-a-time CRC-32C, straight from the definition (reflected polynomial 0x82F63B78).
uint32_t ReferenceCrc32c(const std::string& s) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : s) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

TEST(Crc32c, MatchesTheStandardCheckValueAndTheDefinition) {
  const std::string check = "123456789";
  EXPECT_EQ(Crc32c(check.data(), check.size()), 0xE3069283u);  // the catalogued CRC-32C check value
  std::string bytes;
  for (int i = 0; i < 1000; ++i) bytes.push_back(static_cast<char>((i * 131 + 7) & 0xff));
  EXPECT_EQ(Crc32c(bytes.data(), bytes.size()), ReferenceCrc32c(bytes));
  EXPECT_EQ(MaskCrc(0), 0xa282ead8u);
  EXPECT_EQ(MaskCrc(0x80000000u), (0x80000000u >> 15) + 0xa282ead8u);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

torch::Tensor DecodePng(const std::string& bytes) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  EXPECT_TRUE(png_image_begin_read_from_memory(&image, bytes.data(), bytes.size()));
  image.format = PNG_FORMAT_RGB;
  auto out = torch::zeros({static_cast<int64_t>(image.height), static_cast<int64_t>(image.width), 3}, torch::kUInt8);
  EXPECT_TRUE(png_image_finish_read(&image, nullptr, out.data_ptr<uint8_t>(), 0, nullptr));
  return out;
}

TEST(EventWriter, WritesFramedEventsThatReadBackWithTheirValues) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/tb";
  auto writer = EventWriter::Create(dir);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string path = (*writer)->path();
  EXPECT_EQ(path.rfind(dir + "/events.out.tfevents.", 0), 0u) << path;
  ASSERT_TRUE((*writer)->AddScalars(1, {{"reward/alignment/mean", 0.75}, {"update/ratio", 1.0}}).ok());
  ASSERT_TRUE((*writer)->AddScalars(2, {{"reward/alignment/mean", 0.8125}}).ok());
  auto rgb = torch::randint(0, 256, {6, 9, 3}, torch::kUInt8);
  ASSERT_TRUE((*writer)->AddImage(2, "samples", rgb).ok());
  ASSERT_TRUE((*writer)->Flush().ok());

  auto records = ReadRecords(path);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 4u);
  tensorboard::Event e;
  ASSERT_TRUE(e.ParseFromString((*records)[0]));
  EXPECT_EQ(e.file_version(), "brain.Event:2");
  EXPECT_GT(e.wall_time(), 1.6e9);
  ASSERT_TRUE(e.ParseFromString((*records)[1]));
  EXPECT_EQ(e.step(), 1);
  ASSERT_EQ(e.summary().value_size(), 2);
  EXPECT_EQ(e.summary().value(0).tag(), "reward/alignment/mean");
  EXPECT_EQ(e.summary().value(0).simple_value(), 0.75f);
  EXPECT_EQ(e.summary().value(1).tag(), "update/ratio");
  EXPECT_EQ(e.summary().value(1).simple_value(), 1.0f);
  ASSERT_TRUE(e.ParseFromString((*records)[2]));
  EXPECT_EQ(e.step(), 2);
  EXPECT_EQ(e.summary().value(0).simple_value(), 0.8125f);
  ASSERT_TRUE(e.ParseFromString((*records)[3]));
  const auto& image = e.summary().value(0).image();
  EXPECT_EQ(e.summary().value(0).tag(), "samples");
  EXPECT_EQ(image.height(), 6);
  EXPECT_EQ(image.width(), 9);
  EXPECT_EQ(image.colorspace(), 3);
  EXPECT_TRUE(torch::equal(DecodePng(image.encoded_image_string()), rgb));

  // The framing byte by byte: length, its masked CRC, data, its masked CRC.
  const std::string bytes = Slurp(path);
  const std::string first = (*records)[0];
  uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  EXPECT_EQ(length, first.size());
  uint32_t crc = 0;
  std::memcpy(&crc, bytes.data() + 8, 4);
  EXPECT_EQ(crc, MaskCrc(ReferenceCrc32c(bytes.substr(0, 8))));
  std::memcpy(&crc, bytes.data() + 12 + length, 4);
  EXPECT_EQ(crc, MaskCrc(ReferenceCrc32c(first)));
}

TEST(EventWriter, CorruptOrTruncatedRecordsAreNamed) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/tb_bad";
  std::string path;
  {
    auto writer = EventWriter::Create(dir);
    ASSERT_TRUE(writer.ok()) << writer.status();
    ASSERT_TRUE((*writer)->AddScalars(1, {{"x", 1.0}}).ok());
    path = (*writer)->path();
  }  // closed
  std::string bytes = Slurp(path);
  auto write = [&](const std::string& b) { std::ofstream(path, std::ios::binary | std::ios::trunc) << b; };
  std::string flipped = bytes;
  flipped[flipped.size() - 6] ^= 0x20;  // a byte of the last record's data
  write(flipped);
  auto r = ReadRecords(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("record 1"), std::string::npos) << r.status();
  EXPECT_NE(r.status().message().find("CRC"), std::string::npos) << r.status();
  write(bytes.substr(0, bytes.size() - 3));
  r = ReadRecords(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status();
  write(bytes);
  ASSERT_TRUE(ReadRecords(path).ok());
  EXPECT_FALSE(EventWriter::Create("/proc/no_such_dir/tb").ok());
}

}  // namespace
}  // namespace dancegrpo
