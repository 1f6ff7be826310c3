#pragma once

// Command-line flags generated from a request message by reflection: one flag
// per scalar field, nested messages flattened (--id-number for
// person.id_number; the parent path is prepended only where two leaves would
// share a name). Enums take their value names (e.g. `--kind temporary` or
// `LOSS_KIND_TEMPORARY`), repeated fields take several values or a comma
// list, google.protobuf.Timestamp takes RFC 3339. Adding a request field or a
// whole service therefore needs no flag code. Not thread-safe; used on the
// main thread only.

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace ssc::sscctl {

class RequestFlags {
 public:
  // Adds the flags for `type` to `cmd`. Top-level fields named in `skip` get
  // no flag (e.g. request_id, which is a global option).
  RequestFlags(CLI::App* cmd, const google::protobuf::Descriptor* type,
               const std::set<std::string>& skip);

  RequestFlags(const RequestFlags&) = delete;
  RequestFlags& operator=(const RequestFlags&) = delete;

  // Copies the given flags into `msg` (of the type given to the constructor).
  // INVALID_ARGUMENT naming the flag for a value that does not parse.
  absl::Status Fill(google::protobuf::Message* msg) const;

  // The flag that sets the field at proto path `path` ("person.id_number"),
  // or empty if none does.
  std::string FlagFor(const std::string& path) const;

 private:
  struct Leaf {
    std::vector<const google::protobuf::FieldDescriptor*> path;
    std::string dotted;  // "person.id_number"
    std::string flag;    // "--id-number"
    CLI::Option* option = nullptr;
    std::vector<std::string> values;  // repeated and scalar fields
    bool flag_value = false;          // bool fields
  };

  void Collect(const google::protobuf::Descriptor* type,
               std::vector<const google::protobuf::FieldDescriptor*>& prefix,
               const std::set<std::string>& skip);
  static absl::Status SetLeaf(const Leaf& leaf, google::protobuf::Message* msg);

  std::vector<std::unique_ptr<Leaf>> leaves_;  // stable addresses for CLI11
};

// The enum's values as accepted on the command line: lower case, without the
// common prefix, UNSPECIFIED left out ("temporary, formal").
std::string EnumChoices(const google::protobuf::EnumDescriptor* e);

}  // namespace ssc::sscctl
