#include "dancegrpo/io/images.h"

#include <gif_lib.h>
#include <png.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
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
      {',', {"     ", "     ", "     ", "     ", " ##  ", "  #  ", " #   "}},
      {'=', {"     ", "     ", "#####", "     ", "#####", "     ", "     "}},
      {'/', {"     ", "    #", "   # ", "  #  ", " #   ", "#    ", "     "}},
      {'\'', {"  #  ", "  #  ", " #   ", "     ", "     ", "     ", "     "}},
      {'!', {"  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "     ", "  #  "}},
      {'?', {" ### ", "#   #", "    #", "   # ", "  #  ", "     ", "  #  "}},
      {'<', {"   # ", "  #  ", " #   ", "#    ", " #   ", "  #  ", "   # "}},
      {'>', {" #   ", "  #  ", "   # ", "    #", "   # ", "  #  ", " #   "}},
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

absl::StatusOr<std::string> EncodePng(const torch::Tensor& rgb_in) {
  auto rgb = rgb_in.to(torch::kUInt8).contiguous();
  if (rgb.dim() != 3 || rgb.size(2) != 3) return absl::InvalidArgumentError("EncodePng expects uint8 [H, W, 3]");
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return absl::InternalError("libpng failed to encode an image");
  }
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, png_size_t n) {
        static_cast<std::string*>(png_get_io_ptr(p))->append(reinterpret_cast<const char*>(data), n);
      },
      [](png_structp) {});
  const int h = static_cast<int>(rgb.size(0)), w = static_cast<int>(rgb.size(1));
  png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  auto* data = rgb.data_ptr<uint8_t>();
  for (int y = 0; y < h; ++y) png_write_row(png, data + static_cast<size_t>(y) * w * 3);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

absl::Status WritePng(const std::string& path, const torch::Tensor& rgb) {
  auto bytes = EncodePng(rgb);
  if (!bytes.ok()) return absl::Status(bytes.status().code(), absl::StrCat(bytes.status().message(), " for ", path));
  return hpc::WriteFileAtomically(path, *bytes);
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

torch::Tensor PreviewClips(const torch::Tensor& clips_in, int64_t max_clips, int64_t max_frames) {
  torch::NoGradGuard no_grad;
  auto clips = clips_in.detach().to(torch::kCPU, torch::kFloat32);
  clips = clips.narrow(0, 0, std::min<int64_t>(max_clips, clips.size(0)));
  const int64_t frames = clips.size(2);
  if (frames > max_frames)
    clips = clips.index_select(2, torch::linspace(0, frames - 1, max_frames).round().to(torch::kLong));
  if (clips.size(1) != 3) {
    clips = clips.size(1) >= 3 ? clips.narrow(1, 0, 3) : clips.narrow(1, 0, 1).expand({-1, 3, -1, -1, -1});
    auto peak = clips.abs().flatten(1).amax(1).clamp_min(1e-6).view({-1, 1, 1, 1, 1});
    clips = clips / peak;
  }
  const int64_t width = clips.size(4);
  if (width > 160) {
    const int64_t f = (width + 159) / 160;
    const int64_t n = clips.size(0), c = clips.size(1), t = clips.size(2);
    auto flat = clips.permute({0, 2, 1, 3, 4}).reshape({n * t, c, clips.size(3), clips.size(4)});
    flat = torch::avg_pool2d(flat, {f, f});
    clips = flat.view({n, t, c, flat.size(2), flat.size(3)}).permute({0, 2, 1, 3, 4});
  }
  return clips.contiguous();
}

torch::Tensor PreviewGrid(const torch::Tensor& clips_in) {
  auto clips = PreviewClips(clips_in, 8, 8);
  const int scale = static_cast<int>(std::max<int64_t>(1, 60 / clips.size(4)));
  return ClipGrid(clips, scale);
}

std::vector<std::string> WrapText(const std::string& text, size_t width) {
  std::vector<std::string> lines;
  std::string line;
  for (const auto& word : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    std::string w(word);
    while (w.size() > width) {  // a word longer than the line: cut it
      if (!line.empty()) lines.push_back(line), line.clear();
      lines.push_back(w.substr(0, width));
      w = w.substr(width);
    }
    if (line.empty()) {
      line = w;
    } else if (line.size() + 1 + w.size() <= width) {
      line += " " + w;
    } else {
      lines.push_back(line);
      line = w;
    }
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

std::vector<std::string> ClipLabel(const std::string& header, const std::string& prompt,
                                   const std::vector<std::string>& reward_names, const std::vector<double>& rewards) {
  std::vector<std::string> lines;
  if (!header.empty()) lines.push_back(header);
  lines.push_back(prompt);
  for (size_t k = 0; k < reward_names.size() && k < rewards.size(); ++k)
    lines.push_back(absl::StrFormat("%s %.3f", reward_names[k], rewards[k]));
  return lines;
}

torch::Tensor AnimatedSheet(const std::vector<LabelledClip>& cells, int columns, const std::string& title) {
  torch::NoGradGuard no_grad;
  if (cells.empty()) return torch::full({1, 16, 16, 3}, 255, torch::kUInt8);
  columns = std::max(1, std::min<int>(columns, static_cast<int>(cells.size())));
  const int rows = (static_cast<int>(cells.size()) + columns - 1) / columns;
  // Every clip at display size, as uint8 [F, h, w, 3].
  std::vector<torch::Tensor> shown;
  int64_t clip_w = 0, clip_h = 0, frames = 1;
  for (const auto& cell : cells) {
    auto c = PreviewClips(cell.clip.unsqueeze(0), 1, 48)[0];  // [3, F, h, w]
    const int64_t scale = std::max<int64_t>(1, 120 / std::max(c.size(2), c.size(3)));
    c = c.repeat_interleave(scale, 2).repeat_interleave(scale, 3);
    shown.push_back(((c.clamp(-1, 1) + 1) * 127.5).round().to(torch::kUInt8).permute({1, 2, 3, 0}).contiguous());
    clip_h = std::max(clip_h, shown.back().size(1));
    clip_w = std::max(clip_w, shown.back().size(2));
    frames = std::max(frames, shown.back().size(0));
  }
  const int pad = 8, line_h = 10, char_w = 6;
  const int cell_w = static_cast<int>(std::max<int64_t>(clip_w, 26 * char_w));
  const size_t chars = static_cast<size_t>(cell_w / char_w);
  std::vector<std::vector<std::string>> labels;
  size_t label_lines = 0;
  for (const auto& cell : cells) {
    std::vector<std::string> wrapped;
    for (const auto& l : cell.lines)
      for (auto& w : WrapText(l, chars)) wrapped.push_back(std::move(w));
    label_lines = std::max(label_lines, wrapped.size());
    labels.push_back(std::move(wrapped));
  }
  const int W = pad + columns * (cell_w + pad);
  const auto title_lines = WrapText(title, static_cast<size_t>((W - 2 * pad) / char_w));
  const int title_h = static_cast<int>(title_lines.size()) * line_h + (title_lines.empty() ? 0 : pad);
  const int cell_h = static_cast<int>(clip_h) + 4 + static_cast<int>(label_lines) * line_h;
  const int H = pad + title_h + rows * (cell_h + pad);
  // The still parts (background, title, labels) once; then each frame pastes the clips.
  Canvas still(W, H);
  const Rgb ink{40, 40, 40};
  for (size_t k = 0; k < title_lines.size(); ++k) still.Text(pad, pad + static_cast<int>(k) * line_h, title_lines[k], ink);
  std::vector<std::pair<int, int>> origin;  // top-left corner of each clip
  for (size_t i = 0; i < cells.size(); ++i) {
    const int col = static_cast<int>(i) % columns, row = static_cast<int>(i) / columns;
    const int x = pad + col * (cell_w + pad), y = pad + title_h + row * (cell_h + pad);
    origin.emplace_back(x + (cell_w - static_cast<int>(shown[i].size(2))) / 2, y);
    for (size_t k = 0; k < labels[i].size(); ++k)
      still.Text(x, y + static_cast<int>(clip_h) + 4 + static_cast<int>(k) * line_h, labels[i][k], ink);
  }
  auto out = still.px.unsqueeze(0).repeat({frames, 1, 1, 1});
  for (int64_t t = 0; t < frames; ++t)
    for (size_t i = 0; i < cells.size(); ++i) {
      const auto& c = shown[i];
      const int64_t src = std::min<int64_t>(t, c.size(0) - 1);  // shorter clips hold their last frame
      out[t].narrow(0, origin[i].second, c.size(1)).narrow(1, origin[i].first, c.size(2)).copy_(c[src]);
    }
  return out;
}

absl::StatusOr<std::string> EncodeGif(const torch::Tensor& frames_in, int delay_centiseconds) {
  auto frames = frames_in.to(torch::kUInt8).contiguous();
  if (frames.dim() != 4 || frames.size(3) != 3 || frames.size(0) < 1)
    return absl::InvalidArgumentError("EncodeGif expects uint8 frames [T, H, W, 3] with T >= 1");
  const int64_t t = frames.size(0), h = frames.size(1), w = frames.size(2);
  if (h > 65535 || w > 65535) return absl::InvalidArgumentError("a GIF frame is at most 65535 pixels a side");
  // One palette for the whole animation: median cut (giflib's quantizer) over every frame,
  // stacked into one tall image, so colours do not flicker from frame to frame.
  auto planes = frames.permute({3, 0, 1, 2}).contiguous();  // [3, T, H, W]
  std::vector<GifByteType> index(static_cast<size_t>(t * h * w));
  std::vector<GifColorType> colours(256);
  int palette_size = 256;
  auto* r = planes[0].data_ptr<uint8_t>();
  auto* g = planes[1].data_ptr<uint8_t>();
  auto* b = planes[2].data_ptr<uint8_t>();
  if (GifQuantizeBuffer(static_cast<unsigned>(w), static_cast<unsigned>(t * h), &palette_size, r, g, b, index.data(),
                        colours.data()) != GIF_OK)
    return absl::InternalError("giflib could not quantize the frames to 256 colours");
  // The quantizer keeps 5 bits a channel (white comes out 248): make each palette entry the
  // mean of the pixels mapped to it, which is exact when an entry holds one colour.
  std::vector<double> sum(256 * 3, 0.0), count(256, 0.0);
  for (size_t i = 0; i < index.size(); ++i) {
    const int k = index[i];
    sum[k * 3] += r[i], sum[k * 3 + 1] += g[i], sum[k * 3 + 2] += b[i];
    count[k] += 1;
  }
  for (int k = 0; k < 256; ++k)
    if (count[k] > 0) {
      colours[k].Red = static_cast<GifByteType>(std::lround(sum[k * 3] / count[k]));
      colours[k].Green = static_cast<GifByteType>(std::lround(sum[k * 3 + 1] / count[k]));
      colours[k].Blue = static_cast<GifByteType>(std::lround(sum[k * 3 + 2] / count[k]));
    }
  std::string out;
  int error = 0;
  GifFileType* gif = EGifOpen(&out,
                              [](GifFileType* f, const GifByteType* data, int n) {
                                static_cast<std::string*>(f->UserData)->append(reinterpret_cast<const char*>(data), n);
                                return n;
                              },
                              &error);
  if (!gif) return absl::InternalError(absl::StrCat("giflib: ", GifErrorString(error)));
  auto fail = [&](const char* what) {
    const int code = gif->Error;
    EGifCloseFile(gif, &error);
    return absl::InternalError(absl::StrCat("giflib failed at ", what, ": ", GifErrorString(code)));
  };
  ColorMapObject* map = GifMakeMapObject(256, colours.data());  // the table size must be a power of two
  if (!map) return fail("GifMakeMapObject");
  EGifSetGifVersion(gif, true);  // GIF89a: animation and looping
  const int screen = EGifPutScreenDesc(gif, static_cast<int>(w), static_cast<int>(h), 8, 0, map);
  GifFreeMapObject(map);
  if (screen != GIF_OK) return fail("the screen descriptor");
  // Loop forever: the NETSCAPE2.0 application extension with a loop count of 0.
  const GifByteType loop[3] = {1, 0, 0};
  if (EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE) != GIF_OK ||
      EGifPutExtensionBlock(gif, 11, "NETSCAPE2.0") != GIF_OK || EGifPutExtensionBlock(gif, 3, loop) != GIF_OK ||
      EGifPutExtensionTrailer(gif) != GIF_OK)
    return fail("the loop extension");
  for (int64_t f = 0; f < t; ++f) {
    GraphicsControlBlock gcb{};
    gcb.DisposalMode = DISPOSE_DO_NOT;
    gcb.UserInputFlag = false;
    gcb.DelayTime = delay_centiseconds;
    gcb.TransparentColor = NO_TRANSPARENT_COLOR;
    GifByteType ext[4];
    const size_t len = EGifGCBToExtension(&gcb, ext);
    if (EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, static_cast<int>(len), ext) != GIF_OK) return fail("a frame delay");
    if (EGifPutImageDesc(gif, 0, 0, static_cast<int>(w), static_cast<int>(h), false, nullptr) != GIF_OK)
      return fail("an image descriptor");
    for (int64_t y = 0; y < h; ++y)
      if (EGifPutLine(gif, index.data() + (f * h + y) * w, static_cast<int>(w)) != GIF_OK) return fail("a row");
  }
  if (EGifCloseFile(gif, &error) != GIF_OK) return absl::InternalError(absl::StrCat("giflib: ", GifErrorString(error)));
  return out;
}

absl::Status WriteGif(const std::string& path, const torch::Tensor& frames, int delay_centiseconds) {
  auto bytes = EncodeGif(frames, delay_centiseconds);
  if (!bytes.ok()) return absl::Status(bytes.status().code(), absl::StrCat(bytes.status().message(), " for ", path));
  return hpc::WriteFileAtomically(path, *bytes);
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
