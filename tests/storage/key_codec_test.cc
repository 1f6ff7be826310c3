#include "storage/key_codec.h"

#include <algorithm>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace ssc::storage {
namespace {

TEST(KeyCodecTest, U64BigEndianOrdersNumerically) {
  std::vector<uint64_t> v = {0,     1,          255,       256,
                             65535, 1ull << 32, ~0ull - 1, ~0ull};
  for (size_t i = 0; i + 1 < v.size(); ++i) {
    EXPECT_LT(KeyBuilder().U64(v[i]).Build(),
              KeyBuilder().U64(v[i + 1]).Build())
        << v[i];
  }
  EXPECT_EQ(KeyBuilder().U64(0x0102030405060708ull).Build(),
            std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
}

TEST(KeyCodecTest, I64NegativeSortsFirst) {
  std::vector<int64_t> v = {INT64_MIN, -1000, -1, 0, 1, 1000, INT64_MAX};
  for (size_t i = 0; i + 1 < v.size(); ++i) {
    EXPECT_LT(KeyBuilder().I64(v[i]).Build(),
              KeyBuilder().I64(v[i + 1]).Build())
        << v[i];
  }
  for (int64_t x : v) {
    std::string k = KeyBuilder().I64(x).Build();
    KeyReader r(k);
    EXPECT_EQ(r.I64(), x);
    EXPECT_TRUE(r.done());
  }
}

TEST(KeyCodecTest, StrEscapesZeroAndTerminates) {
  EXPECT_EQ(KeyBuilder().Str("a").Build(), std::string("a\x00\x01", 3));
  EXPECT_EQ(KeyBuilder().Str(std::string("a\0b", 3)).Build(),
            std::string("a\x00\xff"
                        "b\x00\x01",
                        6));
  std::string k =
      KeyBuilder().Str(std::string("\0\0", 2)).Str("").U32(7).Build();
  KeyReader r(k);
  EXPECT_EQ(r.Str(), std::string("\0\0", 2));
  EXPECT_EQ(r.Str(), "");
  EXPECT_EQ(r.U32(), 7u);
  EXPECT_TRUE(r.done());
}

TEST(KeyCodecTest, AppendKeyStringWritesWhatStrWrites) {
  for (const std::string& s :
       {std::string(), std::string("card"), std::string("a\0b\0", 4),
        std::string(64, 'f'), std::string(1, '\0'),
        std::string("\0\0x\0", 4)}) {
    std::string out = "keep";
    AppendKeyString(&out, s);
    EXPECT_EQ(out, "keep" + KeyBuilder().Str(s).Build());
    std::string in_place(KeyStringSize(s), '?');
    EXPECT_EQ(WriteKeyString(in_place.data(), s),
              in_place.data() + in_place.size());
    EXPECT_EQ("keep" + in_place, out);
    KeyReader r(std::string_view(out).substr(4));
    EXPECT_EQ(r.Str(), s);
    EXPECT_TRUE(r.done());
  }
}

TEST(KeyCodecTest, MalformedInputIsRejected) {
  EXPECT_EQ(KeyReader("abc").Str(), std::nullopt);  // no end
  EXPECT_EQ(KeyReader(std::string("a\0\x05", 3)).Str(), std::nullopt);
  EXPECT_EQ(KeyReader("1234567").U64(), std::nullopt);  // short
  EXPECT_EQ(KeyReader("123").U32(), std::nullopt);
}

TEST(KeyCodecTest, CompositeKeysSortComponentByComponent) {
  // ("a", "z") < ("ab", "a"): the first component decides, although the raw
  // concatenation "az" > "aba" would say otherwise.
  EXPECT_LT(KeyBuilder().Str("a").Str("z").Build(),
            KeyBuilder().Str("ab").Str("a").Build());
  EXPECT_LT(KeyBuilder().Str("a").U64(~0ull).Build(),
            KeyBuilder().Str(std::string("a\0", 2)).U64(0).Build());
  EXPECT_LT(KeyBuilder().Str("card").Str("A1").U64(9).Build(),
            KeyBuilder().Str("card").Str("A1").U64(10).Build());
}

std::string RandomString(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> len(0, 6);
  // A tiny alphabet with the special bytes makes ties and escapes common.
  static const char kAlphabet[] = {'\x00', '\x01', '\xff', 'a', 'b'};
  std::uniform_int_distribution<int> pick(0, 4);
  std::string s;
  for (int i = len(rng); i > 0; --i) s.push_back(kAlphabet[pick(rng)]);
  return s;
}

struct Tuple {
  std::string a;
  uint64_t n;
  std::string b;
  int64_t i;
  auto operator<=>(const Tuple&) const = default;
};

TEST(KeyCodecTest, RandomRoundTripsPreserveTupleOrder) {
  std::mt19937_64 rng(42);
  std::vector<Tuple> tuples;
  std::uniform_int_distribution<uint64_t> small(0, 3);
  for (int i = 0; i < 3000; ++i) {
    tuples.push_back(Tuple{RandomString(rng), small(rng) * 0x0101010101ull,
                           RandomString(rng),
                           static_cast<int64_t>(small(rng)) - 2});
  }
  auto encode = [](const Tuple& t) {
    return KeyBuilder().Str(t.a).U64(t.n).Str(t.b).I64(t.i).Build();
  };
  for (const Tuple& t : tuples) {
    std::string k = encode(t);
    KeyReader r(k);
    EXPECT_EQ(r.Str(), t.a);
    EXPECT_EQ(r.U64(), t.n);
    EXPECT_EQ(r.Str(), t.b);
    EXPECT_EQ(r.I64(), t.i);
    EXPECT_TRUE(r.done());
  }
  for (size_t i = 0; i + 1 < tuples.size(); ++i) {
    const Tuple& x = tuples[i];
    const Tuple& y = tuples[i + 1];
    EXPECT_EQ(x <=> y, encode(x) <=> encode(y));
  }
}

TEST(KeyCodecTest, PrefixSuccessor) {
  EXPECT_EQ(PrefixSuccessor("ab"), "ac");
  EXPECT_EQ(PrefixSuccessor(std::string("a\xff\xff", 3)), "b");
  EXPECT_EQ(PrefixSuccessor(std::string("\xff\xff", 2)), "");
  std::string prefix = KeyBuilder().Str("card").Build();
  std::string succ = PrefixSuccessor(prefix);
  EXPECT_LT(KeyBuilder().Str("card").Str("\xff\xff").U64(~0ull).Build(), succ);
  EXPECT_GT(KeyBuilder().Str("card0").Build(), succ);
}

}  // namespace
}  // namespace ssc::storage
