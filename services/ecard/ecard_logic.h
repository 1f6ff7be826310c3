#pragma once

// The e-card service's domain logic (ssc.v1.ECardService without gRPC):
// issuance and channel bindings, the family service, dynamic QR codes and
// their verification, signing keys and the status list for offline
// terminals. The gRPC adapter (ecard_service.h) only converts status codes.
//
// Mutations run through common::RunMutation (exactly once per request_id,
// one atomic write with events, audit and idempotency records) under the
// person's lock (card::CardLogic::PersonLockKey), so they serialize with the
// card changes that ECardObserver mirrors into the e-card.
//
// Identity disclosure (PIPL, least privilege): the holder's social security
// number and name are returned in clear only to counter and admin callers
// (card::CardLogic::SeesClearData); mobile channels and terminals get them
// masked ("510524********123X", "张*"). A VALID verification tells a
// terminal who the holder is in masked form, which with the card-holder
// present is what a terminal needs.
//
// QR verification: every verification is audited with the terminal's
// identity; a VALID one stores the single-use record (kQrTokens, keyed by
// expiry and nonce) in the same atomic write as its audit record, under a
// lock on the nonce, so a code verifies VALID once, also across restarts.
//
// Thread-safe: all methods may be called concurrently.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/card/card_logic.h"
#include "services/common/caller.h"
#include "services/common/mutation.h"
#include "services/ecard/ecard_records.pb.h"
#include "services/ecard/qr_token.h"
#include "services/ecard/signing_keys.h"
#include "ssc/v1/ecard.pb.h"

namespace ssc::ecard {

struct ECardOptions {
  // Validity of a QR code (10 s .. 10 min).
  absl::Duration code_validity = absl::Seconds(60);
  // A code issued up to this far in the terminal's future still verifies
  // (clocks of ssc instances are not perfectly equal).
  absl::Duration clock_skew = absl::Seconds(5);
  // Verification evidence must be at most this old ...
  absl::Duration evidence_max_age = absl::Minutes(30);
  // ... and at most this far ahead of ssc's clock.
  absl::Duration evidence_max_ahead = absl::Minutes(5);
  int max_family_members = 8;
  int default_status_page = 500;
  int max_status_page = 5000;
};

// The outcome of the checks a code passes without the store: form, key,
// signature and times. outcome VALID here means "passed these checks".
struct TokenCheck {
  ssc::v1::QrVerifyOutcome outcome = ssc::v1::QR_VERIFY_OUTCOME_MALFORMED;
  std::string kid;
  QrClaims claims;  // set once the signature verified
};

class ECardLogic {
 public:
  // `ctx` members, `cards` and `keys` must outlive the object. Register an
  // ECardObserver with `cards` so the status follows the physical card.
  ECardLogic(common::StoreContext ctx, const card::CardLogic* cards,
             KeyManager* keys, ECardOptions options = {});

  absl::StatusOr<ssc::v1::IssueECardResponse> IssueECard(
      const common::Caller& caller, const ssc::v1::IssueECardRequest& req);
  absl::StatusOr<ssc::v1::GetECardResponse> GetECard(
      const common::Caller& caller, const ssc::v1::GetECardRequest& req);
  absl::StatusOr<ssc::v1::ListChannelBindingsResponse> ListChannelBindings(
      const common::Caller& caller,
      const ssc::v1::ListChannelBindingsRequest& req);
  absl::StatusOr<ssc::v1::UnbindChannelResponse> UnbindChannel(
      const common::Caller& caller, const ssc::v1::UnbindChannelRequest& req);
  absl::StatusOr<ssc::v1::RevokeECardResponse> RevokeECard(
      const common::Caller& caller, const ssc::v1::RevokeECardRequest& req);
  absl::StatusOr<ssc::v1::AddFamilyMemberResponse> AddFamilyMember(
      const common::Caller& caller, const ssc::v1::AddFamilyMemberRequest& req);
  absl::StatusOr<ssc::v1::RemoveFamilyMemberResponse> RemoveFamilyMember(
      const common::Caller& caller,
      const ssc::v1::RemoveFamilyMemberRequest& req);
  absl::StatusOr<ssc::v1::ListFamilyMembersResponse> ListFamilyMembers(
      const common::Caller& caller,
      const ssc::v1::ListFamilyMembersRequest& req);
  absl::StatusOr<ssc::v1::GenerateQrCodeResponse> GenerateQrCode(
      const common::Caller& caller, const ssc::v1::GenerateQrCodeRequest& req);
  absl::StatusOr<ssc::v1::VerifyQrCodeResponse> VerifyQrCode(
      const common::Caller& caller, const ssc::v1::VerifyQrCodeRequest& req);
  absl::StatusOr<ssc::v1::GetVerificationKeysResponse> GetVerificationKeys(
      const common::Caller& caller,
      const ssc::v1::GetVerificationKeysRequest& req);
  absl::StatusOr<ssc::v1::RotateSigningKeyResponse> RotateSigningKey(
      const common::Caller& caller,
      const ssc::v1::RotateSigningKeyRequest& req);
  absl::StatusOr<ssc::v1::GetStatusListResponse> GetStatusList(
      const common::Caller& caller, const ssc::v1::GetStatusListRequest& req);

  // The store-free checks of a code at `now` (the decoder/verifier the fuzz
  // test drives). Never fails: every input maps to an outcome.
  TokenCheck CheckToken(std::string_view payload, absl::Time now) const;

  // Deletes single-use records of codes that expired over a minute ago, in
  // batches of at most 1000 (at most `max_batches`); returns how many.
  // VerifyQrCode also prunes one batch every 256 VALID verifications, which
  // outpaces the records they add.
  absl::StatusOr<int64_t> PruneQrTokens(int max_batches = 1 << 30);

  const ECardOptions& options() const { return options_; }

 private:
  struct Impl;
  friend struct Impl;

  // The body of VerifyQrCode under its locks: the outcome of `check` against
  // the store, and the single-use record of a VALID code into `ws`.
  absl::Status VerifyToken(const common::Caller& caller,
                           const ssc::v1::VerifyQrCodeRequest& req,
                           const TokenCheck& check,
                           const std::string& token_key, absl::Time now,
                           storage::WriteSet& ws,
                           ssc::v1::VerifyQrCodeResponse* out);

  common::StoreContext ctx_;
  const card::CardLogic* cards_;
  KeyManager* keys_;
  ECardOptions options_;
  std::atomic<uint64_t> valid_verifications_{0};
};

}  // namespace ssc::ecard
