#include "io/jpeg2000.h"

#include <openjpeg.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

namespace pretext::io {
namespace {

// OpenJPEG reads through callbacks; this is the memory it reads from.
struct Reader {
  const uint8_t* data;
  size_t size;
  size_t at = 0;
};

OPJ_SIZE_T read(void* buffer, OPJ_SIZE_T bytes, void* user) {
  auto& r = *static_cast<Reader*>(user);
  if (r.at >= r.size) return static_cast<OPJ_SIZE_T>(-1);
  const size_t n = std::min<size_t>(bytes, r.size - r.at);
  std::memcpy(buffer, r.data + r.at, n);
  r.at += n;
  return n;
}

OPJ_OFF_T skip(OPJ_OFF_T bytes, void* user) {
  auto& r = *static_cast<Reader*>(user);
  const auto to = std::clamp<OPJ_OFF_T>(static_cast<OPJ_OFF_T>(r.at) + bytes, 0,
                                        static_cast<OPJ_OFF_T>(r.size));
  const OPJ_OFF_T moved = to - static_cast<OPJ_OFF_T>(r.at);
  r.at = static_cast<size_t>(to);
  return moved;
}

OPJ_BOOL seek(OPJ_OFF_T position, void* user) {
  auto& r = *static_cast<Reader*>(user);
  if (position < 0 || static_cast<size_t>(position) > r.size) return OPJ_FALSE;
  r.at = static_cast<size_t>(position);
  return OPJ_TRUE;
}

// OpenJPEG's messages are collected, never printed: they go into the error when decoding fails.
void collect(const char* message, void* user) {
  auto& words = *static_cast<std::string*>(user);
  std::string line = message;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (!line.empty() && words.find(line) == std::string::npos)
    words += (words.empty() ? "" : "; ") + line;
}
void ignore(const char*, void*) {}

struct Codec {
  opj_codec_t* codec = nullptr;
  opj_stream_t* stream = nullptr;
  opj_image_t* image = nullptr;
  ~Codec() {
    if (image) opj_image_destroy(image);
    if (stream) opj_stream_destroy(stream);
    if (codec) opj_destroy_codec(codec);
  }
};

}  // namespace

Jpeg2000Image decode_jpeg2000(const uint8_t* data, size_t size) {
  // A JP2 file starts with its signature box; a raw codestream with SOC (FF 4F).
  static const uint8_t kJp2Signature[] = {0, 0, 0, 12, 'j', 'P', ' ', ' '};
  const bool jp2 = size >= sizeof kJp2Signature && std::memcmp(data, kJp2Signature, 8) == 0;
  Codec c;
  std::string words;
  const auto failed = [&](const std::string& what) {
    return std::runtime_error("OpenJPEG: " + what + (words.empty() ? "" : " (" + words + ")"));
  };
  c.codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
  if (!c.codec) throw failed("cannot create a decoder");
  opj_set_error_handler(c.codec, collect, &words);
  opj_set_warning_handler(c.codec, ignore, nullptr);
  opj_set_info_handler(c.codec, ignore, nullptr);
  opj_dparameters_t parameters;
  opj_set_default_decoder_parameters(&parameters);
  if (!opj_setup_decoder(c.codec, &parameters)) throw failed("cannot set up the decoder");
  Reader reader{data, size};
  c.stream = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE);
  if (!c.stream) throw failed("cannot create a stream");
  opj_stream_set_user_data(c.stream, &reader, nullptr);
  opj_stream_set_user_data_length(c.stream, size);
  opj_stream_set_read_function(c.stream, read);
  opj_stream_set_skip_function(c.stream, skip);
  opj_stream_set_seek_function(c.stream, seek);
  if (!opj_read_header(c.stream, c.codec, &c.image) || !c.image)
    throw failed("cannot read the codestream header");
  if (!opj_decode(c.codec, c.stream, c.image) || !opj_end_decompress(c.codec, c.stream))
    throw failed("cannot decode the codestream");
  const opj_image_t& image = *c.image;
  if (image.numcomps < 1) throw failed("no components");
  Jpeg2000Image out;
  out.components = image.numcomps;
  out.width = image.comps[0].w;
  out.height = image.comps[0].h;
  out.precision = image.comps[0].prec;
  out.is_signed = image.comps[0].sgnd != 0;
  for (OPJ_UINT32 k = 0; k < image.numcomps; ++k)
    if (image.comps[k].w != image.comps[0].w || image.comps[k].h != image.comps[0].h ||
        !image.comps[k].data)
      throw failed("component " + std::to_string(k) + " is subsampled or missing");
  const int64_t pixels = out.width * out.height;
  out.samples.resize(static_cast<size_t>(pixels * out.components));
  for (int64_t k = 0; k < out.components; ++k) {
    const OPJ_INT32* plane = image.comps[k].data;
    for (int64_t i = 0; i < pixels; ++i)
      out.samples[static_cast<size_t>(i * out.components + k)] = plane[i];
  }
  return out;
}

}  // namespace pretext::io
