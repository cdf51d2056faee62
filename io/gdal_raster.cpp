#include "io/gdal_raster.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <ogr_srs_api.h>

#include <cstdint>
#include <mutex>

#include <torch/types.h>

#include "base/errors.h"

namespace pretext::io {
namespace {

// A read larger than this is refused before allocating: a header can claim any size.
constexpr int64_t kMaxReadBytes = int64_t{2} << 30;

std::string gdal_reason() {
  const char* message = CPLGetLastErrorMsg();
  return (message && *message) ? std::string(" [GDAL: ") + message + "]" : std::string();
}

DataType from_gdal(GDALDataType type) {
  switch (type) {
    case GDT_Byte:
      return DataType::kUInt8;
    case GDT_UInt16:
      return DataType::kUInt16;
    case GDT_Int16:
      return DataType::kInt16;
    case GDT_UInt32:
      return DataType::kUInt32;
    case GDT_Int32:
      return DataType::kInt32;
    case GDT_Float32:
      return DataType::kFloat32;
    case GDT_Float64:
      return DataType::kFloat64;
    default:
      return DataType::kOther;
  }
}

std::optional<Georeference> read_georeference(GDALDatasetH dataset) {
  Georeference geo;
  const bool has_transform = GDALGetGeoTransform(dataset, geo.geo_transform.data()) == CE_None;
  OGRSpatialReferenceH srs = GDALGetSpatialRef(dataset);
  if (!has_transform && !srs) return std::nullopt;
  if (srs) {
    const char* name = OSRGetName(srs);
    geo.crs_name = name ? name : "";
    char* wkt = nullptr;
    if (OSRExportToWkt(srs, &wkt) == OGRERR_NONE && wkt) geo.crs_wkt = wkt;
    CPLFree(wkt);
  }
  return geo;
}

}  // namespace

void init_gdal() {
  static std::once_flag once;
  std::call_once(once, [] {
    CPLSetErrorHandler(CPLQuietErrorHandler);
    GDALAllRegister();
  });
}

GdalRaster::GdalRaster(const std::string& path) {
  init_gdal();
  CPLErrorReset();
  dataset_ = GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr);
  if (!dataset_) throw InputError(path + ": GDAL cannot open it as a raster" + gdal_reason());
  info_.path = path;
  info_.format = GDALGetDriverShortName(GDALGetDatasetDriver(dataset_));
  info_.width = GDALGetRasterXSize(dataset_);
  info_.height = GDALGetRasterYSize(dataset_);
  const int band_count = GDALGetRasterCount(dataset_);
  if (band_count < 1 || info_.width < 1 || info_.height < 1) {
    GDALClose(dataset_);
    throw InputError(path + ": " + info_.format + ": no pixels (" + std::to_string(band_count) +
                     " bands, " + std::to_string(info_.width) + "x" + std::to_string(info_.height) +
                     ")");
  }
  for (int b = 1; b <= band_count; ++b) {
    GDALRasterBandH band = GDALGetRasterBand(dataset_, b);
    BandInfo band_info;
    const char* description = GDALGetDescription(band);
    band_info.description = description ? description : "";
    band_info.data_type = from_gdal(GDALGetRasterDataType(band));
    int has_nodata = 0;
    const double nodata = GDALGetRasterNoDataValue(band, &has_nodata);
    if (has_nodata) band_info.nodata = nodata;
    info_.bands.push_back(band_info);
  }
}

std::optional<Georeference> GdalRaster::georeference() {
  if (!georeference_) georeference_ = read_georeference(dataset_);
  return *georeference_;
}

GdalRaster::~GdalRaster() {
  if (dataset_) GDALClose(dataset_);
}

Patch GdalRaster::read(const Region& region, const std::vector<int64_t>& bands) {
  const std::string where = info_.path + ": " + info_.format + ": ";
  std::vector<int> band_map;
  if (bands.empty()) {
    for (size_t b = 1; b <= info_.bands.size(); ++b) band_map.push_back(static_cast<int>(b));
  } else {
    for (int64_t b : bands) {
      if (b < 1 || b > static_cast<int64_t>(info_.bands.size()))
        throw InputError(where + "band " + std::to_string(b) + " requested, the file has " +
                         std::to_string(info_.bands.size()));
      band_map.push_back(static_cast<int>(b));
    }
  }
  const std::string window = std::to_string(region.x) + "," + std::to_string(region.y) + " " +
                             std::to_string(region.width) + "x" + std::to_string(region.height);
  if (region.width < 1 || region.height < 1 || region.x < 0 || region.y < 0 ||
      region.x + region.width > info_.width || region.y + region.height > info_.height)
    throw InputError(where + "window " + window + " is outside the image (" +
                     std::to_string(info_.width) + "x" + std::to_string(info_.height) + ")");
  const int64_t out_width = region.out_width > 0 ? region.out_width : region.width;
  const int64_t out_height = region.out_height > 0 ? region.out_height : region.height;
  const int64_t channels = static_cast<int64_t>(band_map.size());
  if (channels * out_width * out_height * 4 > kMaxReadBytes)
    throw InputError(where + "a read of " + std::to_string(channels) + " bands of " +
                     std::to_string(out_width) + "x" + std::to_string(out_height) +
                     " pixels is larger than 2 GiB");

  torch::Tensor pixels = torch::empty({channels, out_height, out_width}, torch::kFloat32);
  GDALRasterIOExtraArg extra;
  INIT_RASTERIO_EXTRA_ARG(extra);
  extra.eResampleAlg = GRIORA_Bilinear;
  CPLErrorReset();
  // Band-sequential float32 buffer: pixel stride 4 bytes, line stride 4*W, band stride 4*W*H.
  const CPLErr status = GDALDatasetRasterIOEx(
      dataset_, GF_Read, static_cast<int>(region.x), static_cast<int>(region.y),
      static_cast<int>(region.width), static_cast<int>(region.height), pixels.data_ptr<float>(),
      static_cast<int>(out_width), static_cast<int>(out_height), GDT_Float32,
      static_cast<int>(channels), band_map.data(), 4, 4 * out_width, 4 * out_width * out_height,
      &extra);
  if (status != CE_None) throw InputError(where + "cannot read window " + window + gdal_reason());

  Patch patch;
  patch.pixels = pixels;
  patch.source = info_.path;
  patch.region = region;
  patch.region.out_width = out_width;
  patch.region.out_height = out_height;
  for (int b : band_map) patch.band_names.push_back(info_.bands[b - 1].description);
  return patch;
}

}  // namespace pretext::io

namespace pretext::io {

void write_geotiff(const std::string& path, const at::Tensor& pixels, DataType data_type,
                   const std::optional<Georeference>& georeference) {
  init_gdal();
  TORCH_CHECK(pixels.dim() == 3, "write_geotiff expects [C, H, W], got ", pixels.sizes());
  GDALDataType gdal_type = GDT_Float32;
  auto values = pixels.to(torch::kFloat32).contiguous();
  if (data_type == DataType::kUInt8 || data_type == DataType::kUInt16) {
    gdal_type = data_type == DataType::kUInt8 ? GDT_Byte : GDT_UInt16;
    values = values.round().clamp(0, full_scale(data_type));
  } else {
    TORCH_CHECK(data_type == DataType::kFloat32, "write_geotiff: unsupported type ",
                to_string(data_type));
  }
  const int bands = static_cast<int>(values.size(0));
  const int height = static_cast<int>(values.size(1));
  const int width = static_cast<int>(values.size(2));
  GDALDriverH driver = GDALGetDriverByName("GTiff");
  const bool tiled = width >= 256 && height >= 256;
  const char* options[] = {"COMPRESS=DEFLATE", tiled ? "TILED=YES" : nullptr, nullptr};
  CPLErrorReset();
  GDALDatasetH dataset = GDALCreate(driver, path.c_str(), width, height, bands, gdal_type,
                                    const_cast<char**>(options));
  if (!dataset) throw InputError(path + ": cannot create GeoTIFF" + gdal_reason());
  if (georeference) {
    auto transform = georeference->geo_transform;
    GDALSetGeoTransform(dataset, transform.data());
    if (!georeference->crs_wkt.empty()) GDALSetProjection(dataset, georeference->crs_wkt.c_str());
  }
  const CPLErr status =
      GDALDatasetRasterIO(dataset, GF_Write, 0, 0, width, height, values.data_ptr<float>(), width,
                          height, GDT_Float32, bands, nullptr, 0, 0, 0);
  GDALClose(dataset);  // flushes; GDAL reports write failures through the error state
  const std::string reason = gdal_reason();
  if (status != CE_None || CPLGetLastErrorType() >= CE_Failure)
    throw InputError(path + ": cannot write GeoTIFF" + reason);
}

std::string encode_png(const at::Tensor& pixels) {
  init_gdal();
  TORCH_CHECK(pixels.dim() == 3 && (pixels.size(0) == 1 || pixels.size(0) == 3),
              "encode_png expects [1 or 3, H, W], got ", pixels.sizes());
  auto values = pixels.round().clamp(0, 255).to(torch::kUInt8).contiguous();
  const int bands = static_cast<int>(values.size(0));
  const int height = static_cast<int>(values.size(1));
  const int width = static_cast<int>(values.size(2));
  // An in-memory dataset copied by the PNG driver into GDAL's in-memory file system.
  GDALDatasetH memory =
      GDALCreate(GDALGetDriverByName("MEM"), "", width, height, bands, GDT_Byte, nullptr);
  TORCH_CHECK(memory, "encode_png: cannot create an in-memory raster", gdal_reason());
  const CPLErr status =
      GDALDatasetRasterIO(memory, GF_Write, 0, 0, width, height, values.data_ptr<uint8_t>(), width,
                          height, GDT_Byte, bands, nullptr, 0, 0, 0);
  if (status != CE_None) {
    GDALClose(memory);
    TORCH_CHECK(false, "encode_png: cannot fill the in-memory raster", gdal_reason());
  }
  const std::string name =
      "/vsimem/pretext_" + std::to_string(reinterpret_cast<uintptr_t>(memory)) + ".png";
  GDALDatasetH png = GDALCreateCopy(GDALGetDriverByName("PNG"), name.c_str(), memory, FALSE,
                                    nullptr, nullptr, nullptr);
  GDALClose(memory);
  TORCH_CHECK(png, "encode_png: the PNG driver failed", gdal_reason());
  GDALClose(png);
  vsi_l_offset size = 0;
  GByte* data = VSIGetMemFileBuffer(name.c_str(), &size, TRUE);  // TRUE: take ownership
  std::string bytes(reinterpret_cast<const char*>(data), static_cast<size_t>(size));
  CPLFree(data);
  return bytes;
}

}  // namespace pretext::io

namespace pretext::io {

std::string crs_wkt_from_epsg(int code) {
  init_gdal();
  OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
  char* wkt = nullptr;
  const bool ok = OSRImportFromEPSG(srs, code) == OGRERR_NONE &&
                  OSRExportToWkt(srs, &wkt) == OGRERR_NONE && wkt;
  std::string text = ok ? wkt : "";
  CPLFree(wkt);
  OSRDestroySpatialReference(srs);
  if (!ok) throw InputError("EPSG:" + std::to_string(code) + ": unknown CRS" + gdal_reason());
  return text;
}

}  // namespace pretext::io
