// The Open Inference Protocol client against the protocol's wire format and against the
// reference server (scripts/reward_server/server.py, started here on 127.0.0.1 with a free
// port): served scores equal in-process ones, closed-form scores, several outputs, and the
// faults (no server, wrong metadata, NaN, wrong count, a raising model, a deadline, a server
// killed and started again).
#include "rewards/oip/remote_reward.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rewards/registry.h"

namespace dancegrpo::rewards::oip {
namespace {

std::string TmpDir() { return std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp"; }

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// The reference server, hosting one scorer, in a child process.
class Server {
 public:
  Server(const std::string& scorer, const std::string& model, std::vector<std::string> extra = {}, int port = 0)
      : scorer_(scorer), model_(model), extra_(std::move(extra)), port_(port) {
    Start();
  }
  ~Server() { Kill(); }

  void Start() {
    static int count = 0;
    const std::string tag = absl::StrCat(TmpDir(), "/server_", getpid(), "_", count++);
    const std::string port_file = tag + ".port";
    log_ = tag + ".log";
    std::vector<std::string> args = {"/usr/bin/python3", "scripts/reward_server/server.py", "--scorer=" + scorer_,
                                     "--model_name=" + model_, absl::StrCat("--port=", port_),
                                     "--port_file=" + port_file};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = fork();
    if (pid_ == 0) {
      FILE* f = std::fopen(log_.c_str(), "w");
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < until) {
      std::ifstream in(port_file);
      if (in >> port_) return;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "the reward server exited: " << Log();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "the reward server did not start in 120 s: " << Log();
  }

  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  std::string Log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  int port() const { return port_; }
  std::string Endpoint() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  std::string scorer_, model_;
  std::vector<std::string> extra_;
  int port_;
  pid_t pid_ = -1;
  std::string log_;
};

constexpr const char* kScorers = "rewards/oip/testdata/scorers.py";

std::vector<Prompt> Prompts(int n) {
  std::vector<Prompt> p;
  for (int i = 0; i < n; ++i) p.push_back({i, std::string(static_cast<size_t>(i + 1), 'a') + " red square"});
  return p;
}

torch::Tensor Clips(int b, int f = 3, int h = 6, int w = 5) {
  torch::manual_seed(7);
  return torch::rand({b, 3, f, h, w}) * 2 - 1;
}

absl::StatusOr<std::vector<WeightedReward>> Remote(const std::string& item) {
  return ParseRewardSpec(item);
}

TEST(OipSpec, ParsesEndpointsModelVersionAndOptions) {
  auto s = ParseRemoteSpec(
      "10.0.0.1:8001+10.0.0.2:8001/videoalign@2?outputs=VQ:1;MQ:0.5;pair[1]:-2&frames=even:8&resize=224x320"
      "&deadline=30&retries=5&backoff=0.25&max_message_mb=64");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->endpoints, (std::vector<std::string>{"10.0.0.1:8001", "10.0.0.2:8001"}));
  EXPECT_EQ(s->model, "videoalign");
  EXPECT_EQ(s->version, "2");
  ASSERT_EQ(s->outputs.size(), 3u);
  EXPECT_EQ(s->outputs[1].name, "MQ");
  EXPECT_EQ(s->outputs[1].weight, 0.5);
  EXPECT_EQ(s->outputs[2].name, "pair");
  EXPECT_EQ(s->outputs[2].column, 1);
  EXPECT_EQ(s->outputs[2].weight, -2);
  EXPECT_EQ(s->frames, RemoteSpec::Frames::kEven);
  EXPECT_EQ(s->frames_arg, 8);
  EXPECT_EQ(s->resize_h, 224);
  EXPECT_EQ(s->resize_w, 320);
  EXPECT_EQ(s->policy.deadline_seconds, 30);
  EXPECT_EQ(s->policy.retries, 5);
  EXPECT_EQ(s->policy.backoff_seconds, 0.25);
  EXPECT_EQ(s->max_message_bytes, int64_t{64} << 20);
  auto plain = ParseRemoteSpec("localhost:8001/hps");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_TRUE(plain->outputs.empty());
  EXPECT_EQ(plain->frames, RemoteSpec::Frames::kAll);
}

TEST(OipSpec, RefusesBadItemsNamingThePart) {
  for (const auto& [text, needle] : std::vector<std::pair<std::string, std::string>>{
           {"localhost/hps", "is not HOST:PORT"},
           {"localhost:99999/hps", "is not HOST:PORT"},
           {"localhost:8001", "HOST:PORT/MODEL"},
           {"localhost:8001/", "HOST:PORT/MODEL"},
           {"localhost:8001/hps?frames=some", "frames=some"},
           {"localhost:8001/hps?resize=224", "resize=224"},
           {"localhost:8001/hps?deadline=-1", "deadline=-1"},
           {"localhost:8001/hps?outputs=VQ:x", "'VQ:x'"},
           {"localhost:8001/hps?outputs=VQ[a]", "NAME[K]"},
           {"localhost:8001/hps?colour=red", "unknown option 'colour'"},
       }) {
    auto s = ParseRemoteSpec(text);
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_NE(s.status().message().find(needle), std::string::npos) << s.status();
    EXPECT_NE(s.status().message().find("the form is oip="), std::string::npos) << s.status();
  }
}

TEST(OipFrames, AllEveryAndEvenlySpaced) {
  RemoteSpec s;
  EXPECT_EQ(SelectFrames(s, 4), (std::vector<int64_t>{0, 1, 2, 3}));
  s.frames = RemoteSpec::Frames::kEvery;
  s.frames_arg = 4;
  EXPECT_EQ(SelectFrames(s, 9), (std::vector<int64_t>{0, 4, 8}));
  s.frames = RemoteSpec::Frames::kEven;
  s.frames_arg = 5;
  EXPECT_EQ(SelectFrames(s, 81), (std::vector<int64_t>{0, 20, 40, 60, 80}));
  EXPECT_EQ(SelectFrames(s, 3), (std::vector<int64_t>{0, 1, 2}));
  s.frames_arg = 1;
  EXPECT_EQ(SelectFrames(s, 9), (std::vector<int64_t>{4}));
}

TEST(OipClips, Uint8AndFp32Layouts) {
  RemoteSpec s;
  auto v = torch::zeros({1, 3, 2, 2, 2});
  v[0][0].fill_(-1);   // red 0
  v[0][1].fill_(1);    // green 255
  v[0][2].fill_(0.5);  // blue (1.5 * 127.5) = 191.25 -> 191
  v[0][2][1][1][0] = 0.0;  // blue at frame 1, y 1, x 0: 127.5 -> 128 (half away from zero)
  auto u = ClipsForRequest(s, v, /*fp32=*/false);
  ASSERT_EQ(u.sizes().vec(), (std::vector<int64_t>{1, 2, 2, 2, 3}));
  ASSERT_EQ(u.scalar_type(), torch::kUInt8);
  EXPECT_EQ(u[0][0][0][0][0].item<int>(), 0);
  EXPECT_EQ(u[0][0][0][0][1].item<int>(), 255);
  EXPECT_EQ(u[0][0][0][0][2].item<int>(), 191);
  EXPECT_EQ(u[0][1][1][0][2].item<int>(), 128);
  auto f = ClipsForRequest(s, v, /*fp32=*/true);
  EXPECT_TRUE(torch::equal(f, v.permute({0, 2, 3, 4, 1})));
  s.resize_h = 4;
  s.resize_w = 6;
  s.frames = RemoteSpec::Frames::kEven;
  s.frames_arg = 1;
  EXPECT_EQ(ClipsForRequest(s, v, true).sizes().vec(), (std::vector<int64_t>{1, 1, 4, 6, 3}));
}

// The protocol's wire format, written out by hand from its field numbers: model_name = 1,
// model_version = 2, inputs = 5 {name = 1, datatype = 2, shape = 3 (packed)}, outputs = 6
// {name = 1}, raw_input_contents = 7; BYTES elements with 4-byte little-endian lengths.
TEST(OipWire, RequestBytesAreTheProtocols) {
  EXPECT_EQ(EncodeBytes({"abc", ""}), std::string("\x03\x00\x00\x00" "abc" "\x00\x00\x00\x00", 11));
  auto back = DecodeBytes(std::string("\x02\x00\x00\x00hi\x01\x00\x00\x00!", 11));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, (std::vector<std::string>{"hi", "!"}));
  EXPECT_FALSE(DecodeBytes(std::string("\x05\x00\x00\x00hi", 6)).ok());
  EXPECT_FALSE(DecodeBytes(std::string("\x05\x00", 2)).ok());

  const std::string wire = SerializeInferRequest(
      "m", "1", {{{"x", "UINT8", {1, 2}}, std::string("\x07\x08", 2)}, {{"p", "BYTES", {1}}, EncodeBytes({"a"})}},
      {"s"});
  const std::string expected = std::string(
      "\x0a\x01m"                            // model_name "m"
      "\x12\x01" "1"                         // model_version "1"
      "\x2a\x0e"                             // inputs[0], 14 bytes:
      "\x0a\x01x" "\x12\x05UINT8" "\x1a\x02\x01\x02"  //   name "x", datatype "UINT8", shape [1, 2]
      "\x2a\x0d"                             // inputs[1], 13 bytes:
      "\x0a\x01p" "\x12\x05" "BYTES" "\x1a\x01\x01"   //   name "p", datatype "BYTES", shape [1]
      "\x32\x03\x0a\x01s"                    // outputs[0]: name "s"
      "\x3a\x02\x07\x08"                     // raw_input_contents[0]
      "\x3a\x05\x01\x00\x00\x00" "a",        // raw_input_contents[1]
      53);
  EXPECT_EQ(wire, expected);
}

// A response as the protocol writes it: outputs = 5 {name = 1, datatype = 2, shape = 3,
// contents = 5 {fp32_contents = 6 (packed)}}, raw_output_contents = 6; floats little endian.
TEST(OipWire, ResponseBytesAreReadAsTheProtocolWritesThem) {
  const std::string floats("\x00\x00\xc0\x3f\x00\x00\x00\xc0", 8);  // 1.5f, -2.0f
  const std::string raw = std::string("\x2a\x0c" "\x0a\x01s" "\x12\x04" "FP32" "\x1a\x01\x02", 14) +
                          std::string("\x32\x08", 2) + floats;
  auto got = ParseInferResponse("m", raw, {"s"});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].spec.shape, (std::vector<int64_t>{2}));
  EXPECT_EQ((*got)[0].raw, floats);
  // The same scores as typed contents (servers that do not answer raw).
  const std::string typed = std::string("\x2a\x18" "\x0a\x01s" "\x12\x04" "FP32" "\x1a\x01\x02" "\x2a\x0a\x32\x08", 18) +
                            floats;
  got = ParseInferResponse("m", typed, {});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].raw, floats);
  auto missing = ParseInferResponse("m", raw, {"t"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("did not return the output 't'"), std::string::npos);
  EXPECT_FALSE(ParseInferResponse("m", "\xff\xff\xff", {}).ok());
}

TEST(OipServer, ServedTorchScriptRewardEqualsInProcessBitForBit) {
  at::set_num_threads(1);  // the served example runs at one thread; so does this reference
  torch::jit::Module m("ColourAndPrompt");
  m.define(R"(
def forward(self, videos, prompts: List[str]):
    red = videos[:, 0].flatten(1).mean(1)
    blue = videos[:, 2].flatten(1).mean(1)
    motion = (videos[:, :, 1:] - videos[:, :, :-1]).abs().flatten(1).mean(1)
    lengths = torch.tensor([float(len(p)) for p in prompts])
    return torch.sigmoid(3.0 * (red - blue)) - 0.5 * motion + 0.01 * lengths
)");
  const std::string path = TmpDir() + "/colour.pt";
  m.save(path);
  Server server("scripts/reward_server/examples/torchscript_reward.py:TorchScriptReward", "colour",
                {"--scorer_arg=" + path});
  auto local = ParseRewardSpec("torchscript=" + path);
  auto remote = Remote("oip=" + server.Endpoint() + "/colour");
  ASSERT_TRUE(local.ok()) << local.status();
  ASSERT_TRUE(remote.ok()) << remote.status() << server.Log();
  ASSERT_EQ(remote->size(), 1u);
  EXPECT_EQ((*remote)[0].reward->name(), "colour");
  for (int b : {1, 4, 7}) {
    auto clips = Clips(b, 5, 8, 6);
    auto want = ScoreAll(*local, clips, Prompts(b));
    auto got = ScoreAll(*remote, clips, Prompts(b));
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_TRUE(got.ok()) << got.status() << server.Log();
    for (int i = 0; i < b; ++i) EXPECT_EQ((*got)[0][i], (*want)[0][i]) << "batch " << b << " clip " << i;
  }
}

TEST(OipServer, ScoresAreTheScorersClosedForm) {
  Server server(absl::StrCat(kScorers, ":MeanScorer"), "mean");
  auto remote = Remote("oip=" + server.Endpoint() + "/mean");
  ASSERT_TRUE(remote.ok()) << remote.status() << server.Log();
  auto clips = Clips(3);
  const auto prompts = Prompts(3);
  auto got = ScoreAll(*remote, clips, prompts);
  ASSERT_TRUE(got.ok()) << got.status();
  const auto u8 = ClipsForRequest(RemoteSpec{}, clips, false).to(torch::kDouble);
  for (int i = 0; i < 3; ++i) {
    const double want = u8[i].mean().item<double>() / 255.0 + static_cast<double>(prompts[i].text.size());
    EXPECT_NEAR((*got)[0][i], want, 1e-6 * want) << "clip " << i;  // FP32 on the wire
  }
  // The model without a text input gets the clips alone.
  Server no_text(absl::StrCat(kScorers, ":NoText"), "aesthetic");
  auto aesthetic = Remote("oip=" + no_text.Endpoint() + "/aesthetic");
  ASSERT_TRUE(aesthetic.ok()) << aesthetic.status() << no_text.Log();
  auto a = ScoreAll(*aesthetic, clips, prompts);
  ASSERT_TRUE(a.ok()) << a.status() << no_text.Log();
  EXPECT_NEAR((*a)[0][1], u8[1].mean().item<double>() / 255.0, 1e-6);
}

// The example the Triton model repository mirrors (triton_example_test checks the mirror).
TEST(OipServer, RednessExampleScoresTheUint8ClipsItIsSent) {
  Server server("scripts/reward_server/examples/redness.py:Redness", "redness");
  auto remote = Remote("oip=" + server.Endpoint() + "/redness");
  ASSERT_TRUE(remote.ok()) << remote.status() << server.Log();
  auto clips = Clips(2);
  auto got = ScoreAll(*remote, clips, Prompts(2));
  ASSERT_TRUE(got.ok()) << got.status() << server.Log();
  const auto x = ClipsForRequest(RemoteSpec{}, clips, false).to(torch::kFloat) / 127.5 - 1;  // [B, F, H, W, 3]
  for (int i = 0; i < 2; ++i) {
    const double want = (x[i].select(-1, 0).mean() - x[i].select(-1, 2).mean()).item<double>();
    EXPECT_NEAR((*got)[0][i], want, 1e-5) << "clip " << i;
  }
}

TEST(OipServer, SeveralOutputsAreSeveralWeightedRewardsFromOneRequest) {
  Server server(absl::StrCat(kScorers, ":VideoAlignLike"), "videoalign");
  auto remote = Remote("oip=" + server.Endpoint() + "+" + server.Endpoint() +
                       "/videoalign?outputs=VQ:1;MQ:0.5;TA:2;pair[1]:-1&frames=even:2&resize=4x7,jpeg:0.25");
  ASSERT_TRUE(remote.ok()) << remote.status() << server.Log();
  ASSERT_EQ(remote->size(), 5u);
  std::vector<std::string> names;
  std::vector<double> weights;
  for (const auto& r : *remote) names.push_back(r.reward->name()), weights.push_back(r.weight);
  EXPECT_EQ(names, (std::vector<std::string>{"videoalign.VQ", "videoalign.MQ", "videoalign.TA", "videoalign.pair[1]",
                                             "jpeg"}));
  EXPECT_EQ(weights, (std::vector<double>{1, 0.5, 2, -1, 0.25}));
  auto clips = Clips(2, 5);
  auto got = ScoreAll(*remote, clips, Prompts(2));
  ASSERT_TRUE(got.ok()) << got.status() << server.Log();
  EXPECT_EQ((*got)[1], (std::vector<double>{2, 2})) << "frames=even:2 sends 2 frames";
  EXPECT_EQ((*got)[2][1], static_cast<double>(Prompts(2)[1].text.size()));
  EXPECT_EQ((*got)[3], (std::vector<double>{7, 7})) << "resize=4x7: width 7";
  // A bare [B, K] output must be named by column; a missing output is named with the ones there are.
  auto bare = Remote("oip=" + server.Endpoint() + "/videoalign?outputs=pair");
  ASSERT_FALSE(bare.ok());
  EXPECT_NE(bare.status().message().find("name its columns as pair[0]"), std::string::npos) << bare.status();
  auto missing = Remote("oip=" + server.Endpoint() + "/videoalign?outputs=AQ");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("no output 'AQ'; the model has VQ, MQ, TA, pair"), std::string::npos)
      << missing.status();
}

TEST(OipFaults, NoServerIsAClearErrorNamingTheEndpoint) {
  const int port = FreePort();
  const auto start = std::chrono::steady_clock::now();
  auto r = Remote(absl::StrCat("oip=127.0.0.1:", port, "/hps?deadline=2&retries=1&backoff=0.1"));
  ASSERT_FALSE(r.ok());
  const std::string msg(r.status().message());
  EXPECT_NE(msg.find(absl::StrCat("127.0.0.1:", port, ": UNAVAILABLE")), std::string::npos) << msg;
  EXPECT_NE(msg.find("after 2 attempt(s)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Is the inference server running"), std::string::npos) << msg;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30)) << "no hang";
}

TEST(OipFaults, WrongModelOrMetadataStopsAtConnectNamingTheField) {
  Server mean(absl::StrCat(kScorers, ":MeanScorer"), "mean");
  auto wrong_name = Remote("oip=" + mean.Endpoint() + "/hps");
  ASSERT_FALSE(wrong_name.ok());
  EXPECT_NE(wrong_name.status().message().find("does not have model 'hps' ready"), std::string::npos)
      << wrong_name.status();
  Server int_video(absl::StrCat(kScorers, ":IntVideo"), "mean");
  auto bad = Remote("oip=" + int_video.Endpoint() + "/mean");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("input 'video' is INT32"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find(int_video.Endpoint()), std::string::npos) << bad.status();
  // Fixed sizes the model declares: the clips must match (frames=, resize= do it).
  Server fixed(absl::StrCat(kScorers, ":FixedShape"), "mean");
  auto f = Remote("oip=" + fixed.Endpoint() + "/mean");
  ASSERT_TRUE(f.ok()) << f.status();
  auto mismatch = ScoreAll(*f, Clips(2, 3, 6, 5), Prompts(2));
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("is [-1, 2, 4, 4, 3] but the clips are [2, 3, 6, 5, 3]"),
            std::string::npos)
      << mismatch.status();
  auto matched = Remote("oip=" + fixed.Endpoint() + "/mean?frames=even:2&resize=4x4");
  ASSERT_TRUE(matched.ok());
  EXPECT_TRUE(ScoreAll(*matched, Clips(2, 3, 6, 5), Prompts(2)).ok());
}

TEST(OipFaults, NanWrongCountAndRaisingModelsAreRefusedNamingTheModel) {
  Server nan(absl::StrCat(kScorers, ":NaNScorer"), "nan");
  auto r = Remote("oip=" + nan.Endpoint() + "/nan");
  ASSERT_TRUE(r.ok()) << r.status();
  auto s = ScoreAll(*r, Clips(3), Prompts(3));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("reward 'nan' returned nan for sample 2"), std::string::npos) << s.status();
  Server wrong(absl::StrCat(kScorers, ":WrongCount"), "count");
  r = Remote("oip=" + wrong.Endpoint() + "/count");
  ASSERT_TRUE(r.ok()) << r.status();
  s = ScoreAll(*r, Clips(3), Prompts(3));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("output 'score' has shape [2] for 3 clips"), std::string::npos) << s.status();
  EXPECT_NE(s.status().message().find("model 'count' at " + wrong.Endpoint()), std::string::npos) << s.status();
  Server raises(absl::StrCat(kScorers, ":Raises"), "oom");
  r = Remote("oip=" + raises.Endpoint() + "/oom?retries=0");
  ASSERT_TRUE(r.ok()) << r.status();
  s = ScoreAll(*r, Clips(2), Prompts(2));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("INTERNAL (the scorer raised RuntimeError: the reward model ran out of memory)"),
            std::string::npos)
      << s.status();
}

TEST(OipFaults, DeadlineThenAServerKilledAndStartedAgain) {
  Server slow(absl::StrCat(kScorers, ":MeanScorer"), "mean", {"--delay_ms=3000"});
  auto r = Remote("oip=" + slow.Endpoint() + "/mean?deadline=0.5&retries=1&backoff=0.05");
  ASSERT_TRUE(r.ok()) << r.status();
  auto s = ScoreAll(*r, Clips(2), Prompts(2));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(slow.Endpoint() + ": DEADLINE_EXCEEDED"), std::string::npos) << s.status();
  EXPECT_NE(s.status().message().find("after 2 attempt(s) of 0.5 s"), std::string::npos) << s.status();

  Server server(absl::StrCat(kScorers, ":MeanScorer"), "mean");
  auto remote = Remote("oip=" + server.Endpoint() + "/mean?deadline=5&retries=2&backoff=0.1");
  ASSERT_TRUE(remote.ok()) << remote.status();
  auto clips = Clips(3);
  auto before = ScoreAll(*remote, clips, Prompts(3));
  ASSERT_TRUE(before.ok()) << before.status();
  server.Kill();
  auto down = ScoreAll(*remote, clips, Prompts(3));
  ASSERT_FALSE(down.ok());
  EXPECT_NE(down.status().message().find(server.Endpoint() + ": UNAVAILABLE"), std::string::npos) << down.status();
  server.Start();  // the same port
  auto after = ScoreAll(*remote, clips, Prompts(3));
  ASSERT_TRUE(after.ok()) << after.status() << server.Log();
  EXPECT_EQ(*after, *before) << "a deterministic server gives the same scores after it is back";
}

}  // namespace
}  // namespace dancegrpo::rewards::oip
