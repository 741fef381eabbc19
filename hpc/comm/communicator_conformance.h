// The conformance suite every Communicator backend must pass (the TensorStore way: one
// suite, every driver). A backend's test instantiates it with a factory:
//   INSTANTIATE_TEST_SUITE_P(Mpi, CommunicatorConformance, ::testing::Values(&MakeMpi));
// Data is self-checking (the nccl-tests way): each rank derives its input from its rank,
// and each rank computes the exact expected output locally.
#ifndef DANCEGRPO_HPC_COMM_COMMUNICATOR_CONFORMANCE_H_
#define DANCEGRPO_HPC_COMM_COMMUNICATOR_CONFORMANCE_H_

#include <torch/types.h>

#include <memory>

#include "gtest/gtest.h"
#include "hpc/comm/communicator.h"

namespace dancegrpo::hpc {

using CommunicatorFactory = std::shared_ptr<Communicator> (*)();

class CommunicatorConformance : public ::testing::TestWithParam<CommunicatorFactory> {
 protected:
  void SetUp() override {
    comm_ = GetParam()();
    ASSERT_NE(comm_, nullptr) << "the backend could not be created";
  }
  // The device the backend's tensors live on (CPU for MPI/local, CUDA for NCCL).
  virtual torch::Device device() const;
  std::shared_ptr<Communicator> comm_;
};

}  // namespace dancegrpo::hpc

#endif  // DANCEGRPO_HPC_COMM_COMMUNICATOR_CONFORMANCE_H_
