// THE authorization table: which roles may call which RPC. One row per
// method (or "package.Service/*" for a whole service). Methods without a row
// are denied. To add a service, append its rows here; tests/server checks
// that every method of every hosted service has a row.
//
// Rules that depend on the request (e.g. a mobile channel may only report a
// *temporary* loss) are enforced by the service logic on top of this table,
// and so are rules that depend on a relationship: a mobile channel acts only
// on holders whose e-card is bound in its own channel (card::HolderScope).
//
// Least privilege: admins administer (imports, backups, populations and
// targets, the QR signing key) and read; they do not take part in the card
// lifecycle, e-card channel operations or payouts. README.md "Services and
// roles" lists this table row by row; tests/server checks both agree.

#include "services/common/grpc/authz.h"

namespace ssc::grpc_common {
namespace {

using common::Role;

// Roles that read card data: look up a card or the invalid-card list.
constexpr RoleSet kCardReaders = {Role::kCounter, Role::kCardBureau,
                                  Role::kTerminal, Role::kAuditor,
                                  Role::kAdmin};

// Roles that follow payouts.
constexpr RoleSet kPayoutReaders = {Role::kFinanceMaker, Role::kFinanceChecker,
                                    Role::kAuditor, Role::kAdmin};

constexpr AuthzRule kTable[] = {
    // ssc.v1.CardService: counters change cards; the card bureau produces;
    // terminals, auditors and admins read; a mobile channel reads and reports
    // a (temporary) loss of its own holders' cards only.
    {"ssc.v1.CardService/ApplyCard", {Role::kCounter}},
    {"ssc.v1.CardService/SendToProduction",
     {Role::kCounter, Role::kCardBureau}},
    {"ssc.v1.CardService/RecordProduction",
     {Role::kCounter, Role::kCardBureau}},
    {"ssc.v1.CardService/IssueCard", {Role::kCounter}},
    {"ssc.v1.CardService/ActivateCard", {Role::kCounter}},
    {"ssc.v1.CardService/ReportLoss", {Role::kCounter, Role::kMobileChannel}},
    {"ssc.v1.CardService/CancelLossReport", {Role::kCounter}},
    {"ssc.v1.CardService/ApplyReplacement", {Role::kCounter}},
    {"ssc.v1.CardService/CancelCard", {Role::kCounter}},
    {"ssc.v1.CardService/UpdateHolderContact", {Role::kCounter}},
    {"ssc.v1.CardService/GetCard",
     kCardReaders | RoleSet{Role::kMobileChannel}},
    {"ssc.v1.CardService/GetPerson",
     {Role::kCounter, Role::kAuditor, Role::kAdmin}},
    {"ssc.v1.CardService/ListCardEvents",
     {Role::kCounter, Role::kAuditor, Role::kAdmin}},
    {"ssc.v1.CardService/CheckInvalidCard", kCardReaders},

    // ssc.v1.AuditService: the audit chain, for auditors and admins.
    {"ssc.v1.AuditService/*", {Role::kAuditor, Role::kAdmin}},

    // ssc.v1.AdminService: bulk import and backups, admins only.
    {"ssc.v1.AdminService/*", {Role::kAdmin}},

    // ssc.v1.ReportService: statisticians and admins read the indicators;
    // only admins set populations and targets and run the counter check.
    {"ssc.v1.ReportService/GetIndicators", {Role::kStatistician, Role::kAdmin}},
    {"ssc.v1.ReportService/GetIndicatorSeries",
     {Role::kStatistician, Role::kAdmin}},
    {"ssc.v1.ReportService/GetBreakdown", {Role::kStatistician, Role::kAdmin}},
    {"ssc.v1.ReportService/ListResidentPopulation",
     {Role::kStatistician, Role::kAdmin}},
    {"ssc.v1.ReportService/ListTargets", {Role::kStatistician, Role::kAdmin}},
    {"ssc.v1.ReportService/GetPayoutFigures",
     {Role::kStatistician, Role::kAdmin}},
    {"ssc.v1.ReportService/SetResidentPopulation", {Role::kAdmin}},
    {"ssc.v1.ReportService/SetTarget", {Role::kAdmin}},
    {"ssc.v1.ReportService/VerifyCounters", {Role::kAdmin}},

    // ssc.v1.PayoutService: review is separated from payment. Finance makers
    // prepare programmes, budgets and batches; finance checkers approve or
    // reject (the logic also refuses a checker certificate or operator who
    // made the batch); both follow execution; auditors and admins read.
    {"ssc.v1.PayoutService/RegisterProgramme", {Role::kFinanceMaker}},
    {"ssc.v1.PayoutService/GetProgramme", kPayoutReaders},
    {"ssc.v1.PayoutService/SetBudget", {Role::kFinanceMaker}},
    {"ssc.v1.PayoutService/GetBudget", kPayoutReaders},
    {"ssc.v1.PayoutService/CreateBatch", {Role::kFinanceMaker}},
    {"ssc.v1.PayoutService/UploadItems", {Role::kFinanceMaker}},
    {"ssc.v1.PayoutService/SealBatch", {Role::kFinanceMaker}},
    {"ssc.v1.PayoutService/SubmitBatch", {Role::kFinanceMaker}},
    {"ssc.v1.PayoutService/ApproveBatch", {Role::kFinanceChecker}},
    {"ssc.v1.PayoutService/RejectBatch", {Role::kFinanceChecker}},
    {"ssc.v1.PayoutService/CancelBatch",
     {Role::kFinanceMaker, Role::kFinanceChecker}},
    {"ssc.v1.PayoutService/PauseBatch",
     {Role::kFinanceMaker, Role::kFinanceChecker}},
    {"ssc.v1.PayoutService/ResumeBatch", {Role::kFinanceChecker}},
    {"ssc.v1.PayoutService/GetBatch", kPayoutReaders},
    {"ssc.v1.PayoutService/WatchBatch", kPayoutReaders},
    {"ssc.v1.PayoutService/ListBatchItems", kPayoutReaders},
    {"ssc.v1.PayoutService/ExportBatchResults", kPayoutReaders},
    {"ssc.v1.PayoutService/Reconcile",
     {Role::kFinanceMaker, Role::kFinanceChecker}},
    {"ssc.v1.PayoutService/CreateRetryBatch", {Role::kFinanceMaker}},
    // ssc.v1.ECardService: mobile channels act for their holders (the logic
    // also limits them to e-cards bound in their own channel); terminals
    // verify codes and keep the offline status list; counters look up,
    // verify, unbind and revoke; admins read and alone rotate the signing
    // key.
    {"ssc.v1.ECardService/IssueECard", {Role::kMobileChannel}},
    {"ssc.v1.ECardService/GetECard",
     {Role::kMobileChannel, Role::kCounter, Role::kAdmin}},
    {"ssc.v1.ECardService/ListChannelBindings",
     {Role::kMobileChannel, Role::kCounter, Role::kAdmin}},
    {"ssc.v1.ECardService/UnbindChannel",
     {Role::kMobileChannel, Role::kCounter}},
    {"ssc.v1.ECardService/RevokeECard", {Role::kCounter}},
    {"ssc.v1.ECardService/AddFamilyMember", {Role::kMobileChannel}},
    {"ssc.v1.ECardService/RemoveFamilyMember", {Role::kMobileChannel}},
    {"ssc.v1.ECardService/ListFamilyMembers",
     {Role::kMobileChannel, Role::kCounter, Role::kAdmin}},
    {"ssc.v1.ECardService/GenerateQrCode", {Role::kMobileChannel}},
    {"ssc.v1.ECardService/VerifyQrCode", {Role::kTerminal, Role::kCounter}},
    {"ssc.v1.ECardService/GetVerificationKeys",
     {Role::kTerminal, Role::kCounter, Role::kAdmin}},
    {"ssc.v1.ECardService/RotateSigningKey", {Role::kAdmin}},
    {"ssc.v1.ECardService/GetStatusList",
     {Role::kTerminal, Role::kCounter, Role::kAdmin}},
};

}  // namespace

std::span<const AuthzRule> AuthzTable() { return kTable; }

}  // namespace ssc::grpc_common
