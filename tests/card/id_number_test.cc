#include "services/card/id_number.h"

#include <string>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "services/common/errors.h"
#include "tests/card/test_ids.h"

namespace ssc::card {
namespace {

using testing::MakeId;

// 2026-01-01 08:00 Beijing.
const absl::Time kNow = absl::FromUnixSeconds(1767225600);

void ExpectBad(std::string_view id, std::string_view why) {
  absl::StatusOr<IdNumberInfo> r =
      ValidateIdNumber("person.id_number", id, kNow);
  ASSERT_FALSE(r.ok()) << id << " should be refused: " << why;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(common::FieldOf(r.status()), "person.id_number");
  // The value itself never appears in the message (personal data).
  if (!id.empty()) {
    EXPECT_EQ(std::string(r.status().message()).find(std::string(id)),
              std::string::npos);
  }
}

TEST(IdNumberTest, PublishedVectorsAreValid) {
  absl::StatusOr<IdNumberInfo> a =
      ValidateIdNumber("f", "34052419800101001X", kNow);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->normalized, "34052419800101001X");
  EXPECT_EQ(a->gender, ssc::v1::GENDER_MALE);
  EXPECT_EQ(a->birth_date_text, "1980-01-01");

  absl::StatusOr<IdNumberInfo> b =
      ValidateIdNumber("f", "11010519491231002X", kNow);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->gender, ssc::v1::GENDER_FEMALE);
  EXPECT_EQ(b->birth_date_text, "1949-12-31");
}

TEST(IdNumberTest, LowercaseXIsNormalized) {
  absl::StatusOr<IdNumberInfo> a =
      ValidateIdNumber("f", "34052419800101001x", kNow);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->normalized, "34052419800101001X");
}

TEST(IdNumberTest, GeneratedNumbersAreValid) {
  int checked = 0;
  for (int year : {1900, 1950, 1999, 2000, 2004, 2025}) {
    for (const char* md : {"0101", "0228", "0715", "1231"}) {
      for (int seq = 0; seq < 40; ++seq) {
        const std::string id = MakeId("510524", std::to_string(year) + md, seq);
        absl::StatusOr<IdNumberInfo> r = ValidateIdNumber("f", id, kNow);
        ASSERT_TRUE(r.ok()) << id << ": " << r.status();
        EXPECT_EQ(r->gender,
                  seq % 2 == 1 ? ssc::v1::GENDER_MALE : ssc::v1::GENDER_FEMALE);
        EXPECT_EQ(IdCheckCharacter(id), id[17]);
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 6 * 4 * 40);
  // Leap day in a leap year.
  EXPECT_TRUE(
      ValidateIdNumber("f", MakeId("510524", "20000229", 11), kNow).ok());
}

TEST(IdNumberTest, BadNumbersAreRefused) {
  ExpectBad("", "empty");
  ExpectBad("34052419800101001", "17 characters");
  ExpectBad("34052419800101001X1", "19 characters");
  ExpectBad("340524198001010010", "wrong check digit");
  ExpectBad("34052419800101001Y", "bad check character");
  ExpectBad("3405241980010100AX", "letter in the body");
  ExpectBad("A4052419800101001X", "letter in the region");
  ExpectBad(MakeId("510524", "19800230", 12), "30 February");
  ExpectBad(MakeId("510524", "19801301", 12), "month 13");
  ExpectBad(MakeId("510524", "19000229", 12), "1900 was not a leap year");
  ExpectBad(MakeId("510524", "20300101", 12), "born in the future");
  ExpectBad(MakeId("510524", "20260102", 12), "born tomorrow");
  // Born today (Beijing date) is fine.
  EXPECT_TRUE(
      ValidateIdNumber("f", MakeId("510524", "20260101", 12), kNow).ok());
}

TEST(FieldValidationTest, Names) {
  EXPECT_TRUE(ValidateName("n", "张三").ok());
  EXPECT_TRUE(ValidateName("n", "阿依古丽·买买提").ok());
  EXPECT_TRUE(ValidateName("n", std::string(30, 'a')).ok());
  EXPECT_EQ(common::FieldOf(ValidateName("person.name", "")), "person.name");
  EXPECT_FALSE(ValidateName("n", std::string(31, 'a')).ok());
  EXPECT_FALSE(
      ValidateName("n", "张三李四王五赵六钱七孙八周九吴").ok());  // 45 bytes
  EXPECT_FALSE(ValidateName("n", "张\x01三").ok());
  EXPECT_FALSE(ValidateName("n", "\xff\xfe").ok());
  EXPECT_FALSE(ValidateName("n", "\xe5\xbc").ok());  // truncated UTF-8
  EXPECT_FALSE(ValidateName("n", " 张三").ok());
}

TEST(FieldValidationTest, Phones) {
  EXPECT_TRUE(ValidatePhone("p", "13800138000").ok());
  EXPECT_TRUE(ValidatePhone("p", "0830-6222222").ok());
  EXPECT_TRUE(ValidatePhone("p", "08306222222").ok());
  EXPECT_FALSE(ValidatePhone("p", "1380013800").ok());
  EXPECT_FALSE(ValidatePhone("p", "138001380001").ok());
  EXPECT_FALSE(ValidatePhone("p", "0830--6222222").ok());
  EXPECT_FALSE(ValidatePhone("p", "-08306222222").ok());
  EXPECT_FALSE(ValidatePhone("p", "0830 6222222").ok());
  EXPECT_FALSE(ValidatePhone("p", "123456").ok());
  EXPECT_FALSE(ValidatePhone("p", "0830-62222222222222222").ok());
}

TEST(FieldValidationTest, AddressesAndCardFields) {
  EXPECT_TRUE(ValidateAddress("a", "").ok());
  EXPECT_TRUE(ValidateAddress("a", "四川省泸州市叙永县叙永镇1号").ok());
  EXPECT_FALSE(ValidateAddress("a", std::string(201, 'a')).ok());
  EXPECT_FALSE(ValidateAddress("a", "a\nb").ok());

  EXPECT_TRUE(ValidateCardNumber("c", "X00000019").ok());
  EXPECT_FALSE(ValidateCardNumber("c", "x00000019").ok());
  EXPECT_FALSE(ValidateCardNumber("c", "X0000001").ok());
  EXPECT_FALSE(ValidateCardNumber("c", "XX0000001").ok());
  EXPECT_FALSE(ValidateCardNumber("c", "").ok());

  EXPECT_TRUE(
      ValidateIdentificationCode("i", "510524D15600000500000000000000AF").ok());
  EXPECT_FALSE(
      ValidateIdentificationCode("i", "510524D15600000500000000000000af").ok());
  EXPECT_FALSE(
      ValidateIdentificationCode("i", "510524D15600000600000000000000AF").ok());
  EXPECT_FALSE(
      ValidateIdentificationCode("i", "51052XD15600000500000000000000AF").ok());
  EXPECT_FALSE(
      ValidateIdentificationCode("i", "510524D1560000050000000000000AF").ok());

  EXPECT_TRUE(ValidateBankCode("b", "ICBC01").ok());
  EXPECT_FALSE(ValidateBankCode("b", "").ok());
  EXPECT_FALSE(ValidateBankCode("b", "ICBC-01").ok());
  EXPECT_FALSE(ValidateBankCode("b", std::string(21, 'A')).ok());

  EXPECT_TRUE(ValidateBankAccount("b", "62220212345678").ok());
  EXPECT_FALSE(ValidateBankAccount("b", "1234567").ok());
  EXPECT_FALSE(ValidateBankAccount("b", std::string(33, '1')).ok());
  EXPECT_FALSE(ValidateBankAccount("b", "6222021234567A").ok());

  for (const char* v : {"1.00", "2.00", "3.00"}) {
    EXPECT_TRUE(ValidateSpecVersion("s", v).ok()) << v;
  }
  EXPECT_FALSE(ValidateSpecVersion("s", "3.0").ok());
  EXPECT_FALSE(ValidateSpecVersion("s", "4.00").ok());

  EXPECT_TRUE(ParseDate("d", "2024-02-29").ok());
  EXPECT_FALSE(ParseDate("d", "2023-02-29").ok());
  EXPECT_FALSE(ParseDate("d", "2023-2-28").ok());
  EXPECT_FALSE(ParseDate("d", "20230228").ok());
}

}  // namespace
}  // namespace ssc::card
