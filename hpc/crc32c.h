// CRC-32C (Castagnoli polynomial, reflected, initial and final XOR all ones), computed by
// Boost.CRC: TensorBoard's record framing and the checksum of a LoRA run's base weights.
#ifndef DANCEGRPO_HPC_CRC32C_H_
#define DANCEGRPO_HPC_CRC32C_H_

#include <cstddef>
#include <cstdint>
#include <memory>

namespace dancegrpo::hpc {

// The CRC-32C of one buffer.
uint32_t Crc32c(const void* data, size_t size);

// The CRC-32C of a stream of buffers: equal to Crc32c of their concatenation.
class Crc32cStream {
 public:
  Crc32cStream();
  ~Crc32cStream();
  void Update(const void* data, size_t size);
  uint32_t value() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_CRC32C_H_
