#include "hpc/crc32c.h"

#include <boost/crc.hpp>

namespace dancegrpo::hpc {

using Castagnoli = boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true>;

struct Crc32cStream::State {
  Castagnoli crc;
};

uint32_t Crc32c(const void* data, size_t size) {
  Castagnoli crc;
  crc.process_bytes(data, size);
  return crc.checksum();
}

Crc32cStream::Crc32cStream() : state_(std::make_unique<State>()) {}
Crc32cStream::~Crc32cStream() = default;
void Crc32cStream::Update(const void* data, size_t size) { state_->crc.process_bytes(data, size); }
uint32_t Crc32cStream::value() const { return state_->crc.checksum(); }

}  // namespace dancegrpo::hpc
