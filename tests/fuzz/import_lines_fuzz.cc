// Fuzz targets: the register import's line parsers (ops::Importer::SplitCsv
// and ParseLine, services/ops/importer.h). Built twice: with
// SSC_FUZZ_IMPORT_CSV the first line of the input is the CSV header and the
// others are rows; otherwise every line is a JSON-lines row. A line may be
// refused (INVALID_ARGUMENT naming the field) but nothing may crash, and a
// refusal is never an internal error.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "services/ops/importer.h"
#include "tests/fuzz/fuzz_store.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ssc::ops::Importer;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  auto next_line = [&rest]() {
    const size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest =
        nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    return line;
  };
#ifdef SSC_FUZZ_IMPORT_CSV
  const ssc::v1::ImportFormat format = ssc::v1::IMPORT_FORMAT_CSV;
  absl::StatusOr<std::vector<std::string>> columns =
      Importer::SplitCsv(next_line());
  ssc::fuzz::CheckClientError("SplitCsv", columns.status());
  if (!columns.ok()) return 0;
#else
  const ssc::v1::ImportFormat format = ssc::v1::IMPORT_FORMAT_JSON_LINES;
  const absl::StatusOr<std::vector<std::string>> columns =
      std::vector<std::string>();
#endif
  while (!rest.empty()) {
    const std::string_view line = next_line();
#ifdef SSC_FUZZ_IMPORT_CSV
    ssc::fuzz::CheckClientError("SplitCsv", Importer::SplitCsv(line).status());
#endif
    ssc::fuzz::CheckClientError(
        "ParseLine", Importer::ParseLine(format, *columns, line).status());
  }
  return 0;
}
