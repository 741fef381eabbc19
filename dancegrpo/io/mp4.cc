#include "dancegrpo/io/mp4.h"

#include <torch/torch.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"

#ifndef DANCEGRPO_NO_MP4
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}
#endif

namespace dancegrpo {

#ifdef DANCEGRPO_NO_MP4
// Built without FFmpeg (scripts/gpu_check.sh on a machine without its headers): no MP4.
bool Mp4Supported() { return false; }
absl::Status WriteMp4(const std::string& path, const torch::Tensor&, const Mp4Options&) {
  return absl::UnimplementedError(absl::StrCat(path, ": this build has no MP4 (built with DANCEGRPO_NO_MP4)"));
}
absl::StatusOr<torch::Tensor> ReadVideoFrames(const std::string& path) {
  return absl::UnimplementedError(absl::StrCat(path, ": this build has no MP4 (built with DANCEGRPO_NO_MP4)"));
}
#else
namespace {

std::string AvError(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

// RAII for FFmpeg's C objects.
struct FormatOut {
  AVFormatContext* ctx = nullptr;
  ~FormatOut() {
    if (ctx != nullptr) {
      if (ctx->pb != nullptr) avio_closep(&ctx->pb);
      avformat_free_context(ctx);
    }
  }
};
struct FormatIn {
  AVFormatContext* ctx = nullptr;
  ~FormatIn() { avformat_close_input(&ctx); }
};
struct Codec {
  AVCodecContext* ctx = nullptr;
  ~Codec() { avcodec_free_context(&ctx); }
};
struct Frame {
  AVFrame* f = av_frame_alloc();
  ~Frame() { av_frame_free(&f); }
};
struct Packet {
  AVPacket* p = av_packet_alloc();
  ~Packet() { av_packet_free(&p); }
};
struct Scaler {
  SwsContext* s = nullptr;
  ~Scaler() { sws_freeContext(s); }
};

// Sends one frame (or nullptr: flush) and writes every packet the encoder returns.
absl::Status Encode(AVFormatContext* fmt, AVCodecContext* c, AVStream* st, AVFrame* frame, const std::string& path) {
  int r = avcodec_send_frame(c, frame);
  if (r < 0) return absl::InternalError(absl::StrCat(path, ": H.264 encoder: ", AvError(r)));
  Packet pkt;
  while (true) {
    r = avcodec_receive_packet(c, pkt.p);
    if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return absl::OkStatus();
    if (r < 0) return absl::InternalError(absl::StrCat(path, ": H.264 encoder: ", AvError(r)));
    if (pkt.p->duration <= 0) pkt.p->duration = 1;  // one frame; else the muxer cuts the last one from the edit list
    av_packet_rescale_ts(pkt.p, c->time_base, st->time_base);
    pkt.p->stream_index = st->index;
    r = av_interleaved_write_frame(fmt, pkt.p);
    if (r < 0) return absl::InternalError(absl::StrCat(path, ": writing a packet: ", AvError(r)));
  }
}

}  // namespace

bool Mp4Supported() { return true; }

absl::Status WriteMp4(const std::string& path, const torch::Tensor& clip, const Mp4Options& options) {
  if (clip.dim() != 4 || clip.size(0) != 3 || clip.size(1) < 1)
    return absl::InvalidArgumentError(absl::StrCat(path, ": an MP4 clip is [3, F, H, W] with F >= 1; got ",
                                                   c10::str(clip.sizes())));
  if (!torch::isfinite(clip).all().item<bool>())
    return absl::InvalidArgumentError(absl::StrCat(path, ": the clip has non-finite values"));
  if (options.fps <= 0 || options.crf < 0 || options.crf > 51)
    return absl::InvalidArgumentError(absl::StrCat(path, ": fps must be > 0 and crf in [0, 51]"));
  // [F, H, W, 3] uint8, padded to even sizes by repeating the last row / column.
  auto rgb = ((clip.detach().to(torch::kCPU, torch::kFloat).clamp(-1, 1) + 1) * 127.5).round().to(torch::kUInt8);
  rgb = rgb.permute({1, 2, 3, 0});
  if (rgb.size(1) % 2) rgb = torch::cat({rgb, rgb.narrow(1, rgb.size(1) - 1, 1)}, 1);
  if (rgb.size(2) % 2) rgb = torch::cat({rgb, rgb.narrow(2, rgb.size(2) - 1, 1)}, 2);
  rgb = rgb.contiguous();
  const int frames = static_cast<int>(rgb.size(0)), h = static_cast<int>(rgb.size(1)), w = static_cast<int>(rgb.size(2));

  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (codec == nullptr) codec = avcodec_find_encoder(AV_CODEC_ID_H264);
  if (codec == nullptr)
    return absl::UnavailableError(absl::StrCat(path, ": this FFmpeg has no H.264 encoder (Debian's libavcodec "
                                               "has libx264; install libavcodec-dev from Debian)"));
  const std::string tmp = path + ".tmp";
  FormatOut out;
  int r = avformat_alloc_output_context2(&out.ctx, nullptr, "mp4", tmp.c_str());
  if (r < 0 || out.ctx == nullptr) return absl::InternalError(absl::StrCat(path, ": MP4 muxer: ", AvError(r)));
  AVStream* st = avformat_new_stream(out.ctx, nullptr);
  Codec enc;
  enc.ctx = avcodec_alloc_context3(codec);
  if (st == nullptr || enc.ctx == nullptr) return absl::ResourceExhaustedError(absl::StrCat(path, ": out of memory"));
  enc.ctx->width = w;
  enc.ctx->height = h;
  enc.ctx->time_base = AVRational{1, options.fps};
  enc.ctx->framerate = AVRational{options.fps, 1};
  enc.ctx->pix_fmt = AV_PIX_FMT_YUV420P;
  enc.ctx->gop_size = 12;
  enc.ctx->max_b_frames = 0;  // short clips: no reordering delay, every frame decodable in order
  enc.ctx->thread_count = 1;  // small clips; the ranks own the cores
  if (out.ctx->oformat->flags & AVFMT_GLOBALHEADER) enc.ctx->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  av_opt_set(enc.ctx->priv_data, "crf", std::to_string(options.crf).c_str(), 0);
  av_opt_set(enc.ctx->priv_data, "preset", "medium", 0);
  if ((r = avcodec_open2(enc.ctx, codec, nullptr)) < 0)
    return absl::InternalError(absl::StrCat(path, ": opening the H.264 encoder (", w, "x", h, "): ", AvError(r)));
  if ((r = avcodec_parameters_from_context(st->codecpar, enc.ctx)) < 0)
    return absl::InternalError(absl::StrCat(path, ": ", AvError(r)));
  st->time_base = enc.ctx->time_base;
  if ((r = avio_open(&out.ctx->pb, tmp.c_str(), AVIO_FLAG_WRITE)) < 0)
    return absl::PermissionDeniedError(absl::StrCat("cannot write ", tmp, ": ", AvError(r)));
  if ((r = avformat_write_header(out.ctx, nullptr)) < 0)
    return absl::InternalError(absl::StrCat(path, ": MP4 header: ", AvError(r)));

  Scaler sws;
  sws.s = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, AV_PIX_FMT_YUV420P, SWS_BICUBIC | SWS_ACCURATE_RND, nullptr,
                         nullptr, nullptr);
  Frame frame;
  frame.f->format = AV_PIX_FMT_YUV420P;
  frame.f->width = w;
  frame.f->height = h;
  if (sws.s == nullptr || av_frame_get_buffer(frame.f, 0) < 0)
    return absl::ResourceExhaustedError(absl::StrCat(path, ": cannot set up the colour conversion"));
  for (int t = 0; t < frames; ++t) {
    if ((r = av_frame_make_writable(frame.f)) < 0) return absl::InternalError(absl::StrCat(path, ": ", AvError(r)));
    const uint8_t* src[1] = {rgb[t].data_ptr<uint8_t>()};
    const int stride[1] = {3 * w};
    sws_scale(sws.s, src, stride, 0, h, frame.f->data, frame.f->linesize);
    frame.f->pts = t;
    if (auto s = Encode(out.ctx, enc.ctx, st, frame.f, path); !s.ok()) return s;
  }
  if (auto s = Encode(out.ctx, enc.ctx, st, nullptr, path); !s.ok()) return s;
  if ((r = av_write_trailer(out.ctx)) < 0) return absl::InternalError(absl::StrCat(path, ": MP4 trailer: ", AvError(r)));
  avio_closep(&out.ctx->pb);
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, " to ", path));
  return absl::OkStatus();
}

absl::StatusOr<torch::Tensor> ReadVideoFrames(const std::string& path) {
  FormatIn in;
  int r = avformat_open_input(&in.ctx, path.c_str(), nullptr, nullptr);
  if (r < 0) return absl::NotFoundError(absl::StrCat("cannot open the video ", path, ": ", AvError(r)));
  if ((r = avformat_find_stream_info(in.ctx, nullptr)) < 0)
    return absl::DataLossError(absl::StrCat(path, ": no stream information: ", AvError(r)));
  const AVCodec* dec = nullptr;
  const int vs = av_find_best_stream(in.ctx, AVMEDIA_TYPE_VIDEO, -1, -1, &dec, 0);
  if (vs < 0 || dec == nullptr) return absl::DataLossError(absl::StrCat(path, ": no video stream"));
  Codec d;
  d.ctx = avcodec_alloc_context3(dec);
  if ((r = avcodec_parameters_to_context(d.ctx, in.ctx->streams[vs]->codecpar)) < 0 ||
      (r = avcodec_open2(d.ctx, dec, nullptr)) < 0)
    return absl::DataLossError(absl::StrCat(path, ": opening the decoder: ", AvError(r)));
  std::vector<torch::Tensor> frames;
  Scaler sws;
  Frame frame;
  Packet pkt;
  auto drain = [&]() -> absl::Status {
    while (true) {
      int rr = avcodec_receive_frame(d.ctx, frame.f);
      if (rr == AVERROR(EAGAIN) || rr == AVERROR_EOF) return absl::OkStatus();
      if (rr < 0) return absl::DataLossError(absl::StrCat(path, ": decoding: ", AvError(rr)));
      const int w = frame.f->width, h = frame.f->height;
      sws.s = sws_getCachedContext(sws.s, w, h, static_cast<AVPixelFormat>(frame.f->format), w, h, AV_PIX_FMT_RGB24,
                                   SWS_BICUBIC | SWS_ACCURATE_RND, nullptr, nullptr, nullptr);
      auto rgb = torch::empty({h, w, 3}, torch::kUInt8);
      uint8_t* dst[1] = {rgb.data_ptr<uint8_t>()};
      const int stride[1] = {3 * w};
      sws_scale(sws.s, frame.f->data, frame.f->linesize, 0, h, dst, stride);
      frames.push_back(rgb);
    }
  };
  while ((r = av_read_frame(in.ctx, pkt.p)) >= 0) {
    if (pkt.p->stream_index == vs) {
      if ((r = avcodec_send_packet(d.ctx, pkt.p)) < 0)
        return absl::DataLossError(absl::StrCat(path, ": decoding: ", AvError(r)));
      if (auto s = drain(); !s.ok()) return s;
    }
    av_packet_unref(pkt.p);
  }
  avcodec_send_packet(d.ctx, nullptr);
  if (auto s = drain(); !s.ok()) return s;
  if (frames.empty()) return absl::DataLossError(absl::StrCat(path, ": no frames decoded"));
  return torch::stack(frames);
}

#endif  // DANCEGRPO_NO_MP4

}  // namespace dancegrpo
