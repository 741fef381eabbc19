#include "dancegrpo/images.h"

#include <png.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "hpc/atomic_file.h"

namespace dancegrpo {
namespace {

// 5x7 glyphs, one string per row ('#' = ink).
const std::map<char, std::array<const char*, 7>>& Font() {
  static const std::map<char, std::array<const char*, 7>> f = {
      {'0', {" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "}},
      {'1', {"  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
      {'2', {" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"}},
      {'3', {"#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "}},
      {'4', {"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "}},
      {'5', {"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "}},
      {'6', {"  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "}},
      {'7', {"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "}},
      {'8', {" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "}},
      {'9', {" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "}},
      {'.', {"     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "}},
      {'-', {"     ", "     ", "     ", "#####", "     ", "     ", "     "}},
      {'_', {"     ", "     ", "     ", "     ", "     ", "     ", "#####"}},
      {':', {"     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     "}},
      {'(', {"   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "}},
      {')', {" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "}},
      {'+', {"     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "}},
      {'%', {"##   ", "##  #", "   # ", "  #  ", " #   ", "#  ##", "   ##"}},
      {'A', {" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"}},
      {'B', {"#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "}},
      {'C', {" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "}},
      {'D', {"#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "}},
      {'E', {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"}},
      {'F', {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    "}},
      {'G', {" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"}},
      {'H', {"#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"}},
      {'I', {" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
      {'J', {"  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  "}},
      {'K', {"#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #"}},
      {'L', {"#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"}},
      {'M', {"#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"}},
      {'N', {"#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #"}},
      {'O', {" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "}},
      {'P', {"#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "}},
      {'Q', {" ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #"}},
      {'R', {"#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"}},
      {'S', {" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "}},
      {'T', {"#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "}},
      {'U', {"#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "}},
      {'V', {"#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  "}},
      {'W', {"#   #", "#   #", "#   #", "# # #", "# # #", "# # #", " # # "}},
      {'X', {"#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #"}},
      {'Y', {"#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  "}},
      {'Z', {"#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####"}},
  };
  return f;
}

using Rgb = std::array<uint8_t, 3>;

struct Canvas {
  int w, h;
  torch::Tensor px;  // uint8 [h, w, 3]
  Canvas(int width, int height) : w(width), h(height), px(torch::full({height, width, 3}, 255, torch::kUInt8)) {}
  void Set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    auto a = px.accessor<uint8_t, 3>();
    for (int k = 0; k < 3; ++k) a[y][x][k] = c[k];
  }
  void Line(double x0, double y0, double x1, double y1, Rgb c, int thick = 1) {
    const int n = static_cast<int>(std::max(std::fabs(x1 - x0), std::fabs(y1 - y0))) + 1;
    for (int i = 0; i <= n; ++i) {
      const double t = static_cast<double>(i) / n;
      const int x = static_cast<int>(std::lround(x0 + t * (x1 - x0))), y = static_cast<int>(std::lround(y0 + t * (y1 - y0)));
      for (int dy = 0; dy < thick; ++dy)
        for (int dx = 0; dx < thick; ++dx) Set(x + dx, y + dy, c);
    }
  }
  void Text(int x, int y, const std::string& s, Rgb c) {
    for (char ch : s) {
      auto it = Font().find(static_cast<char>(std::toupper(static_cast<unsigned char>(ch))));
      if (it != Font().end())
        for (int r = 0; r < 7; ++r)
          for (int col = 0; col < 5; ++col)
            if (it->second[r][col] == '#') Set(x + col, y + r, c);
      x += 6;
    }
  }
};

const Rgb kColours[] = {{31, 119, 180}, {214, 39, 40}, {44, 160, 44}, {255, 127, 14}, {148, 103, 189}, {23, 190, 207}};

}  // namespace

absl::Status WritePng(const std::string& path, const torch::Tensor& rgb_in) {
  auto rgb = rgb_in.to(torch::kUInt8).contiguous();
  if (rgb.dim() != 3 || rgb.size(2) != 3) return absl::InvalidArgumentError("WritePng expects uint8 [H, W, 3]");
  const std::string tmp = hpc::TemporaryPathFor(path);
  FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (!fp) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(fp);
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("libpng failed writing ", path));
  }
  png_init_io(png, fp);
  const int h = static_cast<int>(rgb.size(0)), w = static_cast<int>(rgb.size(1));
  png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  auto* data = rgb.data_ptr<uint8_t>();
  for (int y = 0; y < h; ++y) png_write_row(png, data + static_cast<size_t>(y) * w * 3);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(fp);
  return hpc::CommitFile(tmp, path);
}

torch::Tensor ClipGrid(const torch::Tensor& clips, int scale) {
  const int64_t n = clips.size(0), f = clips.size(2), h = clips.size(3), w = clips.size(4), gap = 2;
  auto img = ((clips.to(torch::kFloat32).clamp(-1, 1) + 1) * 127.5).round().to(torch::kUInt8);
  img = img.repeat_interleave(scale, 3).repeat_interleave(scale, 4);  // [N, 3, F, hs, ws]
  const int64_t hs = h * scale, ws = w * scale;
  auto grid = torch::full({n * (hs + gap) + gap, f * (ws + gap) + gap, 3}, 128, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < f; ++t)
      grid.narrow(0, gap + i * (hs + gap), hs).narrow(1, gap + t * (ws + gap), ws).copy_(img[i].select(1, t).permute({1, 2, 0}));
  return grid;
}

torch::Tensor PreviewGrid(const torch::Tensor& clips_in) {
  torch::NoGradGuard no_grad;
  auto clips = clips_in.detach().to(torch::kCPU, torch::kFloat32);
  clips = clips.narrow(0, 0, std::min<int64_t>(8, clips.size(0)));
  const int64_t frames = clips.size(2);
  if (frames > 8) clips = clips.index_select(2, torch::linspace(0, frames - 1, 8).round().to(torch::kLong));
  if (clips.size(1) != 3) {
    clips = clips.size(1) >= 3 ? clips.narrow(1, 0, 3) : clips.narrow(1, 0, 1).expand({-1, 3, -1, -1, -1});
    auto peak = clips.abs().flatten(1).amax(1).clamp_min(1e-6).view({-1, 1, 1, 1, 1});
    clips = clips / peak;
  }
  int scale = 1;
  const int64_t width = clips.size(4);
  if (width > 160) {
    const int64_t f = (width + 159) / 160;
    const int64_t n = clips.size(0), c = clips.size(1), t = clips.size(2);
    auto flat = clips.permute({0, 2, 1, 3, 4}).reshape({n * t, c, clips.size(3), clips.size(4)});
    flat = torch::avg_pool2d(flat, {f, f});
    clips = flat.view({n, t, c, flat.size(2), flat.size(3)}).permute({0, 2, 1, 3, 4});
  } else {
    scale = static_cast<int>(std::max<int64_t>(1, 60 / width));
  }
  return ClipGrid(clips.contiguous(), scale);
}

absl::Status WriteCurvesPng(const std::string& path, const std::string& title, const std::vector<Curve>& curves) {
  const int W = 720, H = 400, left = 60, right = 170, top = 30, bottom = 40;
  Canvas c(W, H);
  double lo = 1e300, hi = -1e300;
  size_t n = 1;
  for (const auto& cv : curves)
    for (double v : cv.values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v), n = std::max(n, cv.values.size());
  if (lo > hi) lo = 0, hi = 1;
  if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
  const double pad = 0.05 * (hi - lo);
  lo -= pad;
  hi += pad;
  const int pw = W - left - right, ph = H - top - bottom;
  auto X = [&](double i) { return left + (n > 1 ? i / (n - 1) : 0.0) * pw; };
  auto Y = [&](double v) { return top + (1 - (v - lo) / (hi - lo)) * ph; };
  const Rgb grid{225, 225, 225}, axis{60, 60, 60};
  for (int k = 0; k <= 5; ++k) {
    const double v = lo + (hi - lo) * k / 5;
    c.Line(left, Y(v), left + pw, Y(v), grid);
    c.Text(4, static_cast<int>(Y(v)) - 3, absl::StrFormat("%.3f", v), axis);
    const double it = (n - 1) * k / 5.0;
    c.Line(X(it), top, X(it), top + ph, grid);
    c.Text(static_cast<int>(X(it)) - 6, top + ph + 8, absl::StrCat(static_cast<int>(std::lround(it)) + 1), axis);
  }
  c.Line(left, top, left, top + ph, axis);
  c.Line(left, top + ph, left + pw, top + ph, axis);
  c.Text(left + pw / 2 - 27, H - 14, "ITERATION", axis);
  c.Text(left, 10, title, axis);
  for (size_t k = 0; k < curves.size(); ++k) {
    const Rgb col = kColours[k % 6];
    const auto& v = curves[k].values;
    for (size_t i = 1; i < v.size(); ++i) c.Line(X(i - 1), Y(v[i - 1]), X(i), Y(v[i]), col, 2);
    const int ly = top + 10 + static_cast<int>(k) * 16;
    for (int dy = 0; dy < 8; ++dy) c.Line(W - right + 12, ly + dy, W - right + 22, ly + dy, col);
    c.Text(W - right + 28, ly, curves[k].name, axis);
  }
  return WritePng(path, c.px);
}

}  // namespace dancegrpo
