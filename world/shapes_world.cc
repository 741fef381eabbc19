#include "world/shapes_world.h"

#include <torch/torch.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dancegrpo::world {
namespace {

const std::vector<std::string> kObjectNames = {"square", "ball"};
const std::vector<std::string> kMotionNames = {"left", "right", "up", "down"};
const std::vector<std::string> kBackgroundNames = {"black", "white"};
const std::vector<std::string> kCountNames = {"one", "two"};

int IndexOf(const std::vector<std::string>& names, const std::string& word) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == word) return static_cast<int>(i);
  return -1;
}

// Pixels of an object at (x, y) (top-left of its 3 x 3 box).
std::vector<std::pair<int, int>> Footprint(int object, int x, int y) {
  std::vector<std::pair<int, int>> px;
  for (int dy = 0; dy < 3; ++dy)
    for (int dx = 0; dx < 3; ++dx) {
      const bool corner = (dx != 1 && dy != 1);
      if (object == 1 && corner) continue;  // a ball is a plus-shaped disc
      px.emplace_back(x + dx, y + dy);
    }
  return px;
}

}  // namespace

int64_t ClipSpec::id() const {
  return ((((static_cast<int64_t>(object) * kColours + colour) * 2 + (count - 1)) * kMotions +
           static_cast<int>(motion)) * kBackgrounds) + background;
}

std::vector<int64_t> ClipShape() { return {3, kFrames, kSize, kSize}; }

const std::vector<std::string>& ColourNames() {
  static const std::vector<std::string> names = {"red", "green", "blue", "yellow"};
  return names;
}

const std::vector<std::array<float, 3>>& Palette() {
  static const std::vector<std::array<float, 3>> p = {{1, -1, -1}, {-1, 1, -1}, {-1, -1, 1}, {1, 1, -1}};
  return p;
}

const std::vector<std::array<float, 3>>& Backgrounds() {
  static const std::vector<std::array<float, 3>> b = {{-1, -1, -1}, {1, 1, 1}};
  return b;
}

std::array<float, 2> Direction(Motion m) {
  switch (m) {
    case Motion::kLeft: return {-1, 0};
    case Motion::kRight: return {1, 0};
    case Motion::kUp: return {0, -1};
    default: return {0, 1};
  }
}

std::string PromptText(const ClipSpec& s) {
  return absl::StrCat(kCountNames[s.count - 1], " ", ColourNames()[s.colour], " ", kObjectNames[s.object],
                      s.count > 1 ? "s" : "", " moving ", kMotionNames[static_cast<int>(s.motion)], " on a ",
                      kBackgroundNames[s.background], " background");
}

absl::StatusOr<ClipSpec> ParsePrompt(const std::string& text) {
  std::vector<std::string> w = absl::StrSplit(text, ' ', absl::SkipEmpty());
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("prompt '", text, "' is not a shapes-world prompt: ", why,
                                                   " (expected e.g. 'two red balls moving left on a black background')"));
  };
  if (w.size() != 9) return bad("it needs 9 words");
  ClipSpec s;
  const int count = IndexOf(kCountNames, w[0]);
  if (count < 0) return bad(absl::StrCat("unknown count '", w[0], "'"));
  s.count = count + 1;
  s.colour = IndexOf(ColourNames(), w[1]);
  if (s.colour < 0) return bad(absl::StrCat("unknown colour '", w[1], "'"));
  std::string object = w[2];
  if (s.count > 1 && !object.empty() && object.back() == 's') object.pop_back();
  s.object = IndexOf(kObjectNames, object);
  if (s.object < 0) return bad(absl::StrCat("unknown object '", w[2], "'"));
  const int motion = IndexOf(kMotionNames, w[4]);
  if (motion < 0) return bad(absl::StrCat("unknown motion '", w[4], "'"));
  s.motion = static_cast<Motion>(motion);
  s.background = IndexOf(kBackgroundNames, w[7]);
  if (s.background < 0) return bad(absl::StrCat("unknown background '", w[7], "'"));
  return s;
}

std::vector<ClipSpec> AllSpecs() {
  std::vector<ClipSpec> out;
  for (int o = 0; o < kObjects; ++o)
    for (int c = 0; c < kColours; ++c)
      for (int n = 1; n <= 2; ++n)
        for (int m = 0; m < kMotions; ++m)
          for (int b = 0; b < kBackgrounds; ++b) out.push_back({o, c, n, static_cast<Motion>(m), b});
  return out;
}

bool IsHeldOut(const ClipSpec& s) {
  // A fixed pattern over (colour, motion, count, object): about one combination in five,
  // while every single attribute value keeps appearing in training.
  return (s.colour + 2 * static_cast<int>(s.motion) + 3 * s.count + s.object + s.background) % 5 == 0;
}

std::vector<ClipSpec> TrainSpecs() {
  std::vector<ClipSpec> out;
  for (const auto& s : AllSpecs())
    if (!IsHeldOut(s)) out.push_back(s);
  return out;
}

std::vector<ClipSpec> HeldOutSpecs() {
  std::vector<ClipSpec> out;
  for (const auto& s : AllSpecs())
    if (IsHeldOut(s)) out.push_back(s);
  return out;
}

std::vector<std::string> Vocabulary() {
  std::vector<std::string> v = {"moving", "on", "a", "background", "squares", "balls"};
  for (const auto* names : {&kObjectNames, &ColourNames(), &kMotionNames, &kBackgroundNames, &kCountNames})
    v.insert(v.end(), names->begin(), names->end());
  return v;
}

namespace {

// Where an object may start: every frame stays inside the clip. Two objects sit in different
// halves across the direction of motion (rows 0-1 and kSize-4..kSize-3, or those columns), so
// they never touch. Each object's start is uniform over the product of its two ranges.
struct StartRange {
  int lo_x, hi_x, lo_y, hi_y;
};

std::vector<StartRange> StartRanges(const ClipSpec& s) {
  const auto dir = Direction(s.motion);
  const int travel = kFrames - 1;
  const int lo_x = dir[0] < 0 ? travel : 0, hi_x = kSize - 3 - (dir[0] > 0 ? travel : 0);
  const int lo_y = dir[1] < 0 ? travel : 0, hi_y = kSize - 3 - (dir[1] > 0 ? travel : 0);
  if (s.count == 1) return {{lo_x, hi_x, lo_y, hi_y}};
  if (dir[0] != 0) return {{lo_x, hi_x, 0, 1}, {lo_x, hi_x, kSize - 4, kSize - 3}};  // horizontal motion
  return {{0, 1, lo_y, hi_y}, {kSize - 4, kSize - 3, lo_y, hi_y}};
}

torch::Tensor RenderStarts(const ClipSpec& s, const std::vector<std::pair<int, int>>& starts) {
  const auto dir = Direction(s.motion);
  auto clip = torch::empty({3, kFrames, kSize, kSize});
  const auto& bg = Backgrounds()[s.background];
  const auto& fg = Palette()[s.colour];
  auto a = clip.accessor<float, 4>();
  for (int f = 0; f < kFrames; ++f) {
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < kSize; ++y)
        for (int x = 0; x < kSize; ++x) a[c][f][y][x] = bg[c];
    for (const auto& [x0, y0] : starts) {
      const int x = x0 + static_cast<int>(dir[0]) * f, y = y0 + static_cast<int>(dir[1]) * f;
      for (const auto& [px, py] : Footprint(s.object, x, y))
        for (int c = 0; c < 3; ++c) a[c][f][py][px] = fg[c];
    }
  }
  return clip;
}

}  // namespace

torch::Tensor Render(const ClipSpec& s, uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(s.id()));
  auto pick = [&](int lo, int hi) { return lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1)); };
  std::vector<std::pair<int, int>> starts;
  for (const auto& r : StartRanges(s)) {
    const int y = pick(r.lo_y, r.hi_y);  // y first: the order the shipped base was pretrained with
    const int x = pick(r.lo_x, r.hi_x);
    starts.emplace_back(x, y);
  }
  return RenderStarts(s, starts);
}

torch::Tensor EnumerateClips(const ClipSpec& s) {
  std::vector<std::vector<std::pair<int, int>>> all = {{}};
  for (const auto& r : StartRanges(s)) {
    std::vector<std::vector<std::pair<int, int>>> next;
    for (const auto& prefix : all)
      for (int x = r.lo_x; x <= r.hi_x; ++x)
        for (int y = r.lo_y; y <= r.hi_y; ++y) {
          next.push_back(prefix);
          next.back().emplace_back(x, y);
        }
    all = std::move(next);
  }
  std::vector<torch::Tensor> clips;
  for (const auto& starts : all) clips.push_back(RenderStarts(s, starts));
  return torch::stack(clips);
}

}  // namespace dancegrpo::world
