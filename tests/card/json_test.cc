// The JSON writer of event details and log lines (services/common/json.h).

#include "services/common/json.h"

#include <string>

#include "gtest/gtest.h"

namespace ssc::common {
namespace {

TEST(JsonTest, QuotesEscapesAndKeepsUtf8) {
  EXPECT_EQ(JsonQuote(""), "\"\"");
  EXPECT_EQ(JsonQuote("plain 叙永"), "\"plain 叙永\"");
  EXPECT_EQ(JsonQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(JsonQuote("\n\r\t"), "\"\\n\\r\\t\"");
  EXPECT_EQ(JsonQuote(std::string("x\0y\x1f", 4)), "\"x\\u0000y\\u001f\"");
  EXPECT_EQ(JsonQuote("\"\""), "\"\\\"\\\"\"");
  EXPECT_EQ(JsonQuote("end\\"), "\"end\\\\\"");
}

TEST(JsonTest, ObjectsJoinFieldsInOrder) {
  JsonObject o;
  o.Str("name", "张*").Bool("holder_start", true).Int("n", -3);
  EXPECT_EQ(o.Done(), "{\"name\":\"张*\",\"holder_start\":true,\"n\":-3}");
}

}  // namespace
}  // namespace ssc::common
