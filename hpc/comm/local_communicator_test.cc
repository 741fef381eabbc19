#include "hpc/comm/communicator_conformance.h"

#include <torch/torch.h>

namespace dancegrpo::hpc {
namespace {

std::shared_ptr<Communicator> MakeLocal() { return std::make_shared<LocalCommunicator>(); }

INSTANTIATE_TEST_SUITE_P(Local, CommunicatorConformance, ::testing::Values(&MakeLocal));

// One rank cannot wait for itself: a receive with nothing sent fails instead of hanging.
TEST(LocalCommunicator, ReceiveWithNothingSentFails) {
  LocalCommunicator local;
  auto x = torch::zeros({3});
  auto started = local.StartRecv(x, 0, 4);
  ASSERT_TRUE(started.ok());
  auto waited = (*started)->Wait();
  ASSERT_FALSE(waited.ok());
  EXPECT_NE(waited.message().find("nothing was sent"), std::string::npos) << waited;
  // A send of another size is refused at the receive, naming both.
  ASSERT_TRUE(local.Send(torch::ones({5}), 0, 4).ok());
  auto wrong = local.Recv(x, 0, 4);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.message().find("3 Float elements expected, 5 Float sent"), std::string::npos) << wrong;
}

}  // namespace
}  // namespace dancegrpo::hpc
