#include "hpc/comm/communicator_conformance.h"

namespace dancegrpo::hpc {
namespace {

std::shared_ptr<Communicator> MakeLocal() { return std::make_shared<LocalCommunicator>(); }

INSTANTIATE_TEST_SUITE_P(Local, CommunicatorConformance, ::testing::Values(&MakeLocal));

}  // namespace
}  // namespace dancegrpo::hpc
