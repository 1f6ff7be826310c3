// README.md "Services and roles" lists the authorization table per service
// and role; this test parses that list and checks it says exactly what
// services/common/grpc/authz_table.cc allows, row by row (a service-wide
// "*" row included), so neither can change without the other.

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "services/common/caller.h"
#include "services/common/grpc/authz.h"
#include "ssc/v1/admin.pb.h"
#include "ssc/v1/audit.pb.h"
#include "ssc/v1/card.pb.h"
#include "ssc/v1/ecard.pb.h"
#include "ssc/v1/payout.pb.h"
#include "ssc/v1/report.pb.h"

namespace ssc::grpc_common {
namespace {

using common::Role;
using Table = std::map<std::string, std::set<std::string>>;  // row -> roles

constexpr Role kAllRoles[] = {
    Role::kCounter,      Role::kCardBureau,   Role::kMobileChannel,
    Role::kTerminal,     Role::kFinanceMaker, Role::kFinanceChecker,
    Role::kStatistician, Role::kAuditor,      Role::kAdmin};

std::string ReadReadme() {
  std::ifstream in(SSC_README);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Debian's Abseil has its own string_view: plain std helpers here.
std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t end = s.find(sep, start);
    out.push_back(s.substr(start, end - start));
    if (end == std::string::npos) return out;
    start = end + 1;
  }
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::string Unquote(const std::string& s) {
  std::string t = Trim(s);
  if (t.size() >= 2 && t.front() == '`' && t.back() == '`') {
    t = t.substr(1, t.size() - 2);
  }
  return t;
}

// The rows of README's "### Authorization table": "#### `ssc.v1.Service`"
// opens a service, "| `role` | Method, Method |" lists what a role may call.
Table ParseReadme(const std::string& readme, std::vector<std::string>* errors) {
  Table rows;
  bool in_section = false;
  std::string service;
  for (const std::string& line : Split(readme, '\n')) {
    if (StartsWith(line, "### Authorization table")) {
      in_section = true;
      continue;
    }
    if (!in_section) continue;
    if (StartsWith(line, "## ") || StartsWith(line, "### ")) break;
    if (StartsWith(line, "#### ")) {
      service = Unquote(line.substr(5));
      continue;
    }
    if (!StartsWith(line, "| `")) continue;
    const std::vector<std::string> cells = Split(line, '|');
    // "", role, rpcs, ""
    if (cells.size() != 4 || service.empty()) {
      errors->push_back("cannot read row: " + line);
      continue;
    }
    const std::string role = Unquote(cells[1]);
    if (!common::ParseRole(role).has_value()) {
      errors->push_back("unknown role " + role + " in: " + line);
      continue;
    }
    for (const std::string& m : Split(cells[2], ',')) {
      const std::string method = Unquote(m);
      if (method.empty()) {
        errors->push_back("empty method in: " + line);
        continue;
      }
      rows[service + "/" + method].insert(role);
    }
  }
  return rows;
}

Table CodeTable() {
  Table rows;
  for (const AuthzRule& rule : AuthzTable()) {
    std::set<std::string>& roles = rows[std::string(rule.method)];
    for (Role r : kAllRoles) {
      if (rule.roles.Contains(r))
        roles.insert(std::string(common::RoleName(r)));
    }
  }
  return rows;
}

std::string Join(const std::set<std::string>& s) {
  std::string out;
  for (const std::string& x : s)
    absl::StrAppend(&out, out.empty() ? "" : ", ", x);
  return out;
}

TEST(AuthzReadmeTest, ReadmeTableIsTheCodeTable) {
  const std::string readme = ReadReadme();
  ASSERT_FALSE(readme.empty()) << SSC_README;
  std::vector<std::string> errors;
  const Table documented = ParseReadme(readme, &errors);
  for (const std::string& e : errors) ADD_FAILURE() << "README: " << e;
  ASSERT_FALSE(documented.empty()) << "README has no authorization table";
  const Table code = CodeTable();
  for (const auto& [method, roles] : code) {
    auto it = documented.find(method);
    if (it == documented.end()) {
      // A row no role may call is listed nowhere: only flag real rows.
      EXPECT_TRUE(roles.empty())
          << method << " (" << Join(roles) << ") is missing from README";
      continue;
    }
    EXPECT_EQ(Join(it->second), Join(roles))
        << method << ": README says " << Join(it->second) << ", code says "
        << Join(roles);
  }
  for (const auto& [method, roles] : documented) {
    EXPECT_TRUE(code.count(method) == 1)
        << method << " (" << Join(roles) << ") is in README, not in the code";
  }
}

// Every documented row names a real method (or a real service for "*").
TEST(AuthzReadmeTest, ReadmeNamesRealMethods) {
  // Links every ssc.v1 file's descriptors into the generated pool.
  for (const google::protobuf::Descriptor* d :
       {v1::ImportStart::descriptor(), v1::AuditRecord::descriptor(),
        v1::Card::descriptor(), v1::ECard::descriptor(),
        v1::Programme::descriptor(), v1::PopulationUsed::descriptor()}) {
    ASSERT_NE(d, nullptr);
  }
  std::vector<std::string> errors;
  const Table documented = ParseReadme(ReadReadme(), &errors);
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const auto& [row, roles] : documented) {
    const std::vector<std::string> parts = Split(row, '/');
    ASSERT_EQ(parts.size(), 2u) << row;
    const google::protobuf::ServiceDescriptor* s =
        pool->FindServiceByName(parts[0]);
    ASSERT_NE(s, nullptr) << row;
    if (parts[1] != "*") {
      EXPECT_NE(s->FindMethodByName(parts[1]), nullptr) << row;
    }
  }
}

// The parser itself: a changed role set or a missing row is seen.
TEST(AuthzReadmeTest, ParserSeesADifference) {
  std::vector<std::string> errors;
  const Table t = ParseReadme(
      "### Authorization table\n\n#### `ssc.v1.CardService`\n\n"
      "| role | RPCs |\n|---|---|\n| `counter` | ApplyCard, GetCard |\n"
      "| `admin` | GetCard |\n\n#### `ssc.v1.AdminService`\n\n"
      "| `admin` | * |\n\n## Next\n| `admin` | ApplyCard |\n",
      &errors);
  EXPECT_TRUE(errors.empty());
  const Table want = {{"ssc.v1.CardService/ApplyCard", {"counter"}},
                      {"ssc.v1.CardService/GetCard", {"admin", "counter"}},
                      {"ssc.v1.AdminService/*", {"admin"}}};
  EXPECT_EQ(t, want);
  ParseReadme("### Authorization table\n#### `ssc.v1.X`\n| `root` | A |\n",
              &errors);
  EXPECT_EQ(errors.size(), 1u);
}

}  // namespace
}  // namespace ssc::grpc_common
