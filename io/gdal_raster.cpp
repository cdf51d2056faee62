#include "io/gdal_raster.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <gdal_utils.h>
#include <ogr_srs_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
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

std::string number_text(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

// GDAL's command-line style arguments, NULL-terminated, for the gdal_utils entry points.
class Arguments {
 public:
  explicit Arguments(std::vector<std::string> items) : items_(std::move(items)) {
    for (auto& item : items_) pointers_.push_back(item.data());
    pointers_.push_back(nullptr);
  }
  char** get() { return pointers_.data(); }

 private:
  std::vector<std::string> items_;
  std::vector<char*> pointers_;
};

}  // namespace

void init_gdal() {
  static std::once_flag once;
  std::call_once(once, [] {
    CPLSetErrorHandler(CPLQuietErrorHandler);
    GDALAllRegister();
  });
}

void set_gdal_cache_mb(int64_t mib) {
  init_gdal();
  GDALSetCacheMax64(static_cast<GIntBig>(mib) << 20);
}

GdalRaster::GdalRaster(const std::string& path) {
  init_gdal();
  CPLErrorReset();
  dataset_ = GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr);
  if (!dataset_) throw InputError(path + ": GDAL cannot open it as a raster" + gdal_reason());
  describe(path);
}

void GdalRaster::describe(const std::string& path) {
  info_.path = path;
  info_.format =
      GDALGetDriverShortName(GDALGetDatasetDriver(warped_source_ ? warped_source_ : dataset_));
  info_.width = GDALGetRasterXSize(dataset_);
  info_.height = GDALGetRasterYSize(dataset_);
  const int band_count = GDALGetRasterCount(dataset_);
  for (int b = 1; b <= band_count; ++b) {
    GDALRasterBandH band = GDALGetRasterBand(dataset_, b);
    // An alpha band says which pixels hold data: it is the others' mask, not data itself.
    if (GDALGetRasterColorInterpretation(band) == GCI_AlphaBand &&
        (GDALGetMaskFlags(GDALGetRasterBand(dataset_, 1)) & GMF_ALPHA))
      continue;
    BandInfo band_info;
    const char* description = GDALGetDescription(band);
    band_info.description = description ? description : "";
    band_info.data_type = from_gdal(GDALGetRasterDataType(band));
    int has_nodata = 0;
    const double nodata = GDALGetRasterNoDataValue(band, &has_nodata);
    if (has_nodata) band_info.nodata = nodata;
    int has_scale = 0, has_offset = 0;
    const double scale = GDALGetRasterScale(band, &has_scale);
    const double offset = GDALGetRasterOffset(band, &has_offset);
    if (has_scale) band_info.scale = scale;
    if (has_offset) band_info.offset = offset;
    info_.bands.push_back(band_info);
    data_bands_.push_back(b);
  }
  if (info_.bands.empty() || info_.width < 1 || info_.height < 1) {
    const std::string format = info_.format;
    GDALClose(dataset_);
    dataset_ = nullptr;
    throw InputError(path + ": " + format + ": no pixels (" + std::to_string(band_count) +
                     " bands, " + std::to_string(info_.width) + "x" + std::to_string(info_.height) +
                     ")");
  }
  GDALRasterBandH first = GDALGetRasterBand(dataset_, data_bands_[0]);
  int block_width = 0, block_height = 0;
  GDALGetBlockSize(first, &block_width, &block_height);
  block_size_ = {block_width, block_height};
  for (int o = 0; o < GDALGetOverviewCount(first); ++o) {
    GDALRasterBandH overview = GDALGetOverview(first, o);
    overviews_.push_back({GDALGetRasterBandXSize(overview), GDALGetRasterBandYSize(overview)});
  }
  std::sort(overviews_.begin(), overviews_.end(),
            [](const auto& a, const auto& b) { return a[0] > b[0]; });
}

std::optional<Georeference> GdalRaster::georeference() {
  if (!georeference_) georeference_ = read_georeference(dataset_);
  return *georeference_;
}

GdalRaster::~GdalRaster() {
  if (dataset_) GDALClose(dataset_);
  if (warped_source_) GDALClose(warped_source_);
}

Patch GdalRaster::read(const Region& region, const std::vector<int64_t>& bands) {
  return read(region, bands, /*nearest=*/false);
}

std::vector<int64_t> GdalRaster::chosen_bands(const std::vector<int64_t>& bands) const {
  std::vector<int64_t> chosen;
  if (bands.empty()) {
    for (size_t b = 1; b <= info_.bands.size(); ++b) chosen.push_back(static_cast<int64_t>(b));
    return chosen;
  }
  for (int64_t b : bands) {
    if (b < 1 || b > static_cast<int64_t>(info_.bands.size()))
      throw InputError(info_.path + ": " + info_.format + ": band " + std::to_string(b) +
                       " requested, the file has " + std::to_string(info_.bands.size()));
    chosen.push_back(b);
  }
  return chosen;
}

Patch GdalRaster::read(const Region& region, const std::vector<int64_t>& bands, bool nearest) {
  const std::string where = info_.path + ": " + info_.format + ": ";
  const auto chosen = chosen_bands(bands);
  std::vector<int> band_map;  // GDAL's band numbers
  for (const int64_t b : chosen) band_map.push_back(data_bands_[static_cast<size_t>(b - 1)]);
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
  // Shrinking averages (and reads the overview GDAL finds fit); enlarging interpolates.
  extra.eResampleAlg = nearest ? GRIORA_NearestNeighbour
                       : out_width < region.width || out_height < region.height ? GRIORA_Average
                                                                                : GRIORA_Bilinear;
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
  for (const int64_t b : chosen)
    patch.band_names.push_back(info_.bands[static_cast<size_t>(b - 1)].description);
  return patch;
}

std::unique_ptr<GdalRaster> GdalRaster::warped(const std::string& path, const Grid& grid) {
  init_gdal();
  const auto& t = grid.geo_transform;
  if (grid.width < 1 || grid.height < 1 || t[2] != 0 || t[4] != 0 || t[1] <= 0 || t[5] >= 0)
    throw InputError(path + ": cannot warp onto a grid that is empty or not north-up");
  std::unique_ptr<GdalRaster> raster(new GdalRaster());
  CPLErrorReset();
  raster->warped_source_ =
      GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr);
  if (!raster->warped_source_)
    throw InputError(path + ": GDAL cannot open it as a raster" + gdal_reason());
  double transform[6];
  if (GDALGetGeoTransform(raster->warped_source_, transform) != CE_None ||
      !GDALGetSpatialRef(raster->warped_source_))
    throw InputError(path + ": no georeference, so it cannot be aligned with other dates");
  // A VRT in memory: pixels are warped when windows are read. The alpha band marks where the
  // file has ground; the file's nodata value, if any, carries over.
  Arguments arguments({"-of", "VRT", "-t_srs", grid.crs_wkt, "-te", number_text(t[0]),
                       number_text(t[3] + grid.height * t[5]),
                       number_text(t[0] + grid.width * t[1]), number_text(t[3]), "-ts",
                       std::to_string(grid.width), std::to_string(grid.height), "-r", "bilinear",
                       "-dstalpha"});
  GDALWarpAppOptions* options = GDALWarpAppOptionsNew(arguments.get(), nullptr);
  if (!options) throw InputError(path + ": GDAL refused the warp options" + gdal_reason());
  int usage_error = 0;
  GDALDatasetH source = raster->warped_source_;
  raster->dataset_ = GDALWarp("", nullptr, 1, &source, options, &usage_error);
  GDALWarpAppOptionsFree(options);
  if (!raster->dataset_)
    throw InputError(path + ": GDAL cannot warp it onto the reference grid" + gdal_reason());
  raster->describe(path);
  return raster;
}

Patch GdalRaster::read_window(const Region& region, const RasterReadOptions& options) {
  Region target = region;
  if (options.ground_sample_distance() > 0) {
    const double native = ground_sample_distance();
    if (native <= 0)
      throw InputError(info_.path + ": no georeference, so no ground sample distance to read at");
    const double factor = native / options.ground_sample_distance();
    target.out_width =
        std::max<int64_t>(1, std::llround(static_cast<double>(region.width) * factor));
    target.out_height =
        std::max<int64_t>(1, std::llround(static_cast<double>(region.height) * factor));
  }
  Patch patch = read(target, options.bands());
  const int64_t out_height = patch.pixels.size(1), out_width = patch.pixels.size(2);
  const auto chosen = chosen_bands(options.bands());
  auto valid = torch::ones({out_height, out_width}, torch::kBool);
  std::vector<uint8_t> mask(static_cast<size_t>(out_width * out_height));
  bool dataset_mask_read = false;
  for (size_t j = 0; j < chosen.size(); ++j) {
    GDALRasterBandH band =
        GDALGetRasterBand(dataset_, data_bands_[static_cast<size_t>(chosen[j] - 1)]);
    const int flags = GDALGetMaskFlags(band);
    const auto values = patch.pixels[static_cast<int64_t>(j)];
    if (flags & GMF_ALL_VALID) {
      if (options.fallback_nodata()) valid &= values != *options.fallback_nodata();
      continue;
    }
    if (flags & GMF_PER_DATASET) {
      if (dataset_mask_read) continue;
      dataset_mask_read = true;
    }
    GDALRasterIOExtraArg extra;
    INIT_RASTERIO_EXTRA_ARG(extra);
    extra.eResampleAlg = GRIORA_NearestNeighbour;
    CPLErrorReset();
    if (GDALRasterIOEx(GDALGetMaskBand(band), GF_Read, static_cast<int>(region.x),
                       static_cast<int>(region.y), static_cast<int>(region.width),
                       static_cast<int>(region.height), mask.data(), static_cast<int>(out_width),
                       static_cast<int>(out_height), GDT_Byte, 0, 0, &extra) != CE_None)
      throw InputError(info_.path + ": " + info_.format + ": cannot read the mask of band " +
                       std::to_string(chosen[j]) + gdal_reason());
    valid &= torch::from_blob(mask.data(), {out_height, out_width}, torch::kUInt8) > 0;
  }
  if (options.cloud_band() > 0) {
    // The classification as stored, nearest neighbour: classes do not average.
    const auto classes =
        read({region.x, region.y, region.width, region.height, out_width, out_height},
             {options.cloud_band()}, /*nearest=*/true)
            .pixels[0];
    auto cloudy = options.cloud_values().empty() ? classes != 0 : torch::zeros_like(valid);
    for (const double value : options.cloud_values()) cloudy |= classes == value;
    valid &= cloudy.logical_not();
  }
  for (size_t j = 0; j < chosen.size(); ++j) {
    const auto& band_info = info_.bands[static_cast<size_t>(chosen[j] - 1)];
    if (band_info.scale != 1.0 || band_info.offset != 0.0)
      patch.pixels[static_cast<int64_t>(j)].mul_(band_info.scale).add_(band_info.offset);
  }
  patch.valid = valid;
  return patch;
}

int64_t GdalRaster::band_named(const std::string& name) const {
  std::string known;
  for (size_t b = 0; b < info_.bands.size(); ++b) {
    if (info_.bands[b].description == name) return static_cast<int64_t>(b + 1);
    known += (known.empty() ? "" : ", ") + ("'" + info_.bands[b].description + "'");
  }
  throw InputError(info_.path + ": no band described as '" + name + "' (bands: " + known + ")");
}

double GdalRaster::ground_sample_distance() {
  const auto geo = georeference();
  if (!geo) return 0.0;
  return std::hypot(geo->geo_transform[1], geo->geo_transform[4]);
}

int64_t GdalRaster::overview_for(double ground_sample_distance) {
  const double native = this->ground_sample_distance();
  if (native <= 0 || ground_sample_distance <= native) return -1;
  const double wanted = ground_sample_distance / native;
  int64_t best = -1;
  for (size_t o = 0; o < overviews_.size(); ++o) {
    const double factor = static_cast<double>(info_.width) / static_cast<double>(overviews_[o][0]);
    if (factor <= wanted * (1 + 1e-6)) best = static_cast<int64_t>(o);
  }
  return best;
}

const std::array<double, 6>& GdalRaster::north_up_transform(const char* what) {
  if (!georeference() || georeference()->crs_wkt.empty())
    throw InputError(info_.path + ": no georeference (CRS and transform), needed for " + what);
  const auto& t = (*georeference_)->geo_transform;
  if (t[2] != 0 || t[4] != 0)
    throw InputError(info_.path + ": a rotated grid is not supported for " + what);
  return t;
}

Region GdalRaster::window_of(const Bounds& bounds) {
  const auto& t = north_up_transform("a window in map coordinates");
  const double c0 = (bounds.min_x - t[0]) / t[1], c1 = (bounds.max_x - t[0]) / t[1];
  const double r0 = (bounds.max_y - t[3]) / t[5], r1 = (bounds.min_y - t[3]) / t[5];
  Region region;
  region.x = static_cast<int64_t>(std::floor(std::min(c0, c1) + 1e-6));
  region.y = static_cast<int64_t>(std::floor(std::min(r0, r1) + 1e-6));
  region.width = static_cast<int64_t>(std::ceil(std::max(c0, c1) - 1e-6)) - region.x;
  region.height = static_cast<int64_t>(std::ceil(std::max(r0, r1) - 1e-6)) - region.y;
  return region;
}

Bounds GdalRaster::footprint_in(const std::string& crs_wkt) {
  const auto& t = north_up_transform("a footprint");
  OGRSpatialReferenceH from = OSRNewSpatialReference((*georeference_)->crs_wkt.c_str());
  OGRSpatialReferenceH to = OSRNewSpatialReference(crs_wkt.c_str());
  OSRSetAxisMappingStrategy(from, OAMS_TRADITIONAL_GIS_ORDER);
  OSRSetAxisMappingStrategy(to, OAMS_TRADITIONAL_GIS_ORDER);
  OGRCoordinateTransformationH transform = OCTNewCoordinateTransformation(from, to);
  // The edges, 16 points each: a straight edge in one CRS bends in another.
  constexpr int kSteps = 16;
  std::vector<double> xs, ys;
  for (int i = 0; i <= kSteps; ++i) {
    const double f = static_cast<double>(i) / kSteps;
    for (const auto& [c, r] :
         std::vector<std::pair<double, double>>{{f, 0.0}, {f, 1.0}, {0.0, f}, {1.0, f}}) {
      xs.push_back(t[0] + c * static_cast<double>(info_.width) * t[1]);
      ys.push_back(t[3] + r * static_cast<double>(info_.height) * t[5]);
    }
  }
  const bool ok = transform && OCTTransform(transform, static_cast<int>(xs.size()), xs.data(),
                                            ys.data(), nullptr);
  if (transform) OCTDestroyCoordinateTransformation(transform);
  OSRDestroySpatialReference(from);
  OSRDestroySpatialReference(to);
  if (!ok)
    throw InputError(info_.path + ": its extent cannot be transformed to the common CRS" +
                     gdal_reason());
  return {*std::min_element(xs.begin(), xs.end()), *std::min_element(ys.begin(), ys.end()),
          *std::max_element(xs.begin(), xs.end()), *std::max_element(ys.begin(), ys.end())};
}

Grid GdalRaster::grid() {
  const auto& t = north_up_transform("a reference grid");
  return {(*georeference_)->crs_wkt, t, info_.width, info_.height};
}

std::optional<std::pair<Date, std::string>> GdalRaster::acquisition_date() {
  // Acquisition items first; TIFFTAG_DATETIME is often when the file was written.
  static const char* const kItems[] = {"ACQUISITION_DATE",
                                       "ACQUISITIONDATE",
                                       "DATE_ACQUIRED",
                                       "ACQUISITION_TIME",
                                       "SENSING_TIME",
                                       "SENSING_DATE",
                                       "DATATAKE_1_DATATAKE_SENSING_START",
                                       "PRODUCT_START_TIME",
                                       "DATETIME",
                                       "TIFFTAG_DATETIME"};
  GDALDatasetH dataset = warped_source_ ? warped_source_ : dataset_;
  for (const char* item : kItems) {
    const char* value = GDALGetMetadataItem(dataset, item, nullptr);
    if (!value || !*value) continue;
    const auto date = parse_date(value);
    if (!date)
      throw InputError(info_.path + ": metadata item " + item + " = '" + value +
                       "' is not a date this reader knows (YYYY-MM-DD, YYYY:MM:DD hh:mm:ss, "
                       "YYYYMMDD)");
    return std::make_pair(*date, std::string(item));
  }
  return std::nullopt;
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
