#include "server/broker/broker.h"

#include <google/protobuf/util/time_util.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "server/broker/oauth.h"
#include "server/common/log.h"
#include "server/common/status_util.h"
#include "server/common/url.h"
#include "server/leyr/leyr_error.h"

namespace leyr {
namespace {

using broker::v1::Authorization;

constexpr absl::string_view kNamePrefix = "authorizations/";
constexpr size_t kIdBytes = 16;  // 128-bit ids, 22 base64url characters
constexpr size_t kMaxLabels = 16;
constexpr size_t kMaxCodeBytes = 4096;
constexpr size_t kMaxDescriptionBytes = 512;
constexpr absl::Duration kMaxWait = absl::Minutes(15);
// The activation call gets at most this long, and must end this long before the caller's
// deadline, so that CompleteAuthorization still answers in time when Leyr is slow.
constexpr absl::Duration kMaxActivation = absl::Seconds(5);
constexpr absl::Duration kActivationMargin = absl::Seconds(1);
constexpr absl::Duration kMinActivation = absl::Milliseconds(100);

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  google::protobuf::Timestamp ts;
  timespec spec = absl::ToTimespec(t);
  ts.set_seconds(spec.tv_sec);
  ts.set_nanos(static_cast<int32_t>(spec.tv_nsec));
  return ts;
}

absl::string_view StateName(AuthState state) {
  switch (state) {
    case Authorization::STATE_PENDING: return "pending";
    case Authorization::STATE_ACTIVE: return "active";
    case Authorization::STATE_DENIED: return "denied";
    case Authorization::STATE_EXPIRED: return "expired";
    case Authorization::STATE_REVOKED: return "revoked";
    case Authorization::STATE_REAUTHORIZATION_REQUIRED: return "reauthorization_required";
    default: return "unspecified";
  }
}

absl::Status InvalidArgument(absl::string_view reason, absl::string_view message) {
  return MakeError(absl::StatusCode::kInvalidArgument, reason, message);
}

bool IsLabelKey(absl::string_view key) {
  if (key.empty() || key.size() > 63 || !absl::ascii_islower(key[0])) return false;
  for (char c : key) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '-')) return false;
  }
  return true;
}

bool HasControlChars(absl::string_view s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// RFC 6749 section 4.1.2.1: error and code are printable ASCII.
bool IsVisibleAscii(absl::string_view s, bool allow_space) {
  for (unsigned char c : s) {
    if (c < 0x20 || c > 0x7e || (!allow_space && c == 0x20)) return false;
  }
  return true;
}

// Shortens to at most `max` bytes without cutting a UTF-8 sequence, dropping control characters.
std::string CleanText(absl::string_view s, size_t max) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) continue;
    out.push_back(static_cast<char>(c));
  }
  if (out.size() > max) {
    size_t cut = max;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
  }
  return out;
}

absl::Status StateError(AuthState state) {
  switch (state) {
    case Authorization::STATE_REAUTHORIZATION_REQUIRED:
      return MakeError(absl::StatusCode::kFailedPrecondition, reason::kReauthorizationRequired,
                       "Leyr no longer accepts this authorization; begin a new one");
    case Authorization::STATE_EXPIRED:
      return MakeError(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationExpired,
                       "the authorization expired before it was completed");
    default:
      return MakeError(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive,
                       absl::StrCat("the authorization is ", StateName(state), ", not active"));
  }
}

// What a caller may not see answers exactly like what does not exist.
absl::Status AuthorizationNotFound() {
  return MakeError(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound,
                   "authorization not found");
}

// Whether the caller may see `record` through `connections` (its use or revoke set): its own
// authorizations, or every owner's with all_owners. No policy: everything.
bool MaySee(const Caller& caller, const AuthorizationRecord& record,
            const ConnectionSet CallerPermissions::*connections) {
  const CallerPermissions* p = caller.permissions.get();
  if (p == nullptr) return true;
  return (p->all_owners || record.owner == caller.identity) &&
         (p->*connections).Contains(record.connection);
}

std::string EncodePageToken(const AuthorizationRecord& last) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(absl::ToUnixNanos(last.create_time), ":", last.id));
}

// The wait state shared by the store subscription, the timer and cancellation.
class WaitState final : public PendingWait, public std::enable_shared_from_this<WaitState> {
 public:
  WaitState(AuthorizationEvents* events, Scheduler* scheduler,
            std::function<void(absl::StatusOr<AuthorizationRecord>)> done)
      : events_(events), scheduler_(scheduler), done_(std::move(done)) {}

  void Arm(uint64_t subscription, uint64_t timer) {
    {
      absl::MutexLock lock(&mu_);
      if (!finished_) {
        subscription_ = subscription;
        timer_ = timer;
        return;
      }
    }
    // A change finished the wait before it was armed: drop what was set up for it.
    events_->Unsubscribe(subscription);
    scheduler_->Cancel(timer);
  }

  // Finishes once; later calls do nothing.
  void Finish(absl::StatusOr<AuthorizationRecord> result) {
    uint64_t subscription, timer;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
      subscription = subscription_;
      timer = timer_;
    }
    if (subscription) events_->Unsubscribe(subscription);
    if (timer) scheduler_->Cancel(timer);
    done_(std::move(result));
  }

  void Cancel() override {
    Finish(MakeError(absl::StatusCode::kCancelled, "CANCELLED", "the wait was cancelled"));
  }

 private:
  AuthorizationEvents* events_;
  Scheduler* scheduler_;
  std::function<void(absl::StatusOr<AuthorizationRecord>)> done_;
  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t subscription_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t timer_ ABSL_GUARDED_BY(mu_) = 0;
};

absl::flat_hash_map<std::string, AuthorizeUriParts> AuthorizeUriPartsOf(
    const BrokerSettings& settings) {
  absl::flat_hash_map<std::string, AuthorizeUriParts> parts;
  for (const auto& [name, connection] : settings.connections) {
    parts.emplace(name, MakeAuthorizeUriParts(connection));
  }
  return parts;
}

}  // namespace

Broker::Broker(BrokerSettings settings, BrokerDeps deps)
    : settings_(std::move(settings)),
      deps_(deps),
      authorize_uri_parts_(AuthorizeUriPartsOf(settings_)) {}

void Broker::ToProto(const AuthorizationRecord& record, Authorization* out) {
  out->set_name(absl::StrCat(kNamePrefix, record.id));
  out->set_connection(record.connection);
  out->set_state(record.state);
  out->set_emr(record.emr);
  for (const auto& [k, v] : record.labels) (*out->mutable_labels())[k] = v;
  out->set_return_uri(record.return_uri);
  *out->mutable_create_time() = ToTimestamp(record.create_time);
  *out->mutable_update_time() = ToTimestamp(record.update_time);
  if (record.state == Authorization::STATE_PENDING || record.state == Authorization::STATE_EXPIRED) {
    *out->mutable_expire_time() = ToTimestamp(record.expire_time);
  }
  out->set_denial_error(record.denial_error);
  out->set_denial_description(record.denial_description);
  out->set_activated(record.activated);
}

absl::StatusOr<std::string> Broker::ParseName(absl::string_view name,
                                              absl::string_view field) const {
  if (name.empty()) {
    return InvalidArgument(reason::kInvalidName, absl::StrCat(field, " is required"));
  }
  absl::string_view id = name;
  if (!absl::ConsumePrefix(&id, kNamePrefix) || id.size() != 22 ||
      !std::all_of(id.begin(), id.end(), [](char c) {
        return absl::ascii_isalnum(c) || c == '-' || c == '_';
      })) {
    return InvalidArgument(reason::kInvalidName,
                           absl::StrCat(field, " must have the form authorizations/{id}"));
  }
  return std::string(id);
}

void Broker::Changed(const AuthorizationRecord& record, AuthState from, bool notify) {
  LEYR_LOG(Info, "authorization_state")
      .Field("audit", true)
      .Field("authorization", absl::StrCat(kNamePrefix, record.id))
      .Field("connection", record.connection)
      .Field("owner", record.owner)
      .Field("from", StateName(from))
      .Field("to", StateName(record.state));
  if (deps_.metrics != nullptr) deps_.metrics->state_changes->Add({std::string(StateName(record.state))});
  if (notify) deps_.events->Notify(record.id);
}

absl::StatusOr<Broker::BeginResult> Broker::Begin(
    const Caller& caller, const broker::v1::BeginAuthorizationRequest& request) {
  LEYR_RETURN_IF_ERROR(CheckRpcAllowed(caller.permissions.get(), Rpc::kBegin));
  if (request.connection().empty()) {
    return InvalidArgument(reason::kInvalidArgument, "connection is required");
  }
  auto conn_it = settings_.connections.find(request.connection());
  if (conn_it == settings_.connections.end()) {
    return MakeError(absl::StatusCode::kNotFound, reason::kConnectionNotFound,
                     "connection is not configured on this broker");
  }
  const ConnectionSettings& connection = conn_it->second;
  if (caller.permissions && !caller.permissions->begin.Contains(connection.name)) {
    return MakeError(absl::StatusCode::kPermissionDenied, reason::kConnectionNotAllowed,
                     "this caller may not begin authorizations for this connection");
  }
  if (!request.return_uri().empty()) {
    auto origin = CanonicalOrigin(request.return_uri());
    if (!origin.ok()) {
      return InvalidArgument(reason::kReturnUriNotAllowed,
                             absl::StrCat("return_uri is not acceptable: ", origin.status().message()));
    }
    if (!settings_.return_uri_origins.count(*origin)) {
      return InvalidArgument(reason::kReturnUriNotAllowed,
                             "return_uri's origin is not on the broker's allow-list");
    }
    if (caller.permissions && !caller.permissions->return_uri_origins.count(*origin)) {
      return InvalidArgument(reason::kReturnUriNotAllowed,
                             "return_uri's origin is not allowed for this caller");
    }
  }
  if (request.labels_size() > static_cast<int>(kMaxLabels)) {
    return InvalidArgument(reason::kInvalidLabels, "at most 16 labels are allowed");
  }
  for (const auto& [key, value] : request.labels()) {
    if (!IsLabelKey(key)) {
      return InvalidArgument(reason::kInvalidLabels,
                             "label keys must be 1-63 characters of a-z, 0-9, '_' and '-', "
                             "starting with a letter");
    }
    if (value.size() > 255 || HasControlChars(value)) {
      return InvalidArgument(reason::kInvalidLabels,
                             absl::StrCat("label '", key,
                                          "' must be at most 255 bytes without control characters"));
    }
  }

  LEYR_ASSIGN_OR_RETURN(std::string state, NewState(*deps_.random));
  LEYR_ASSIGN_OR_RETURN(std::string id_bytes, deps_.random->Bytes(kIdBytes));
  absl::Time now = deps_.clock->Now();
  AuthorizationRecord record;
  record.id = Base64Url(id_bytes);
  record.connection = connection.name;
  record.emr = connection.emr;
  record.state = Authorization::STATE_PENDING;
  record.labels.insert(request.labels().begin(), request.labels().end());
  record.return_uri = request.return_uri();
  record.owner = caller.identity;
  record.create_time = now;
  record.update_time = now;
  record.expire_time = now + settings_.state_ttl;
  LEYR_RETURN_IF_ERROR(deps_.store->Insert(record, HashState(state)));
  Changed(record, Authorization::STATE_UNSPECIFIED);
  return BeginResult{std::move(record),
                     BuildAuthorizeUri(authorize_uri_parts_.at(conn_it->first), state)};
}

absl::StatusOr<std::string> Broker::NextUri(const AuthorizationRecord& record) const {
  if (record.return_uri.empty()) return std::string();
  return AppendQuery(record.return_uri, {{"authorization", absl::StrCat(kNamePrefix, record.id)},
                                         {"result", std::string(StateName(record.state))}});
}

void Broker::Complete(const Caller& caller,
                      const broker::v1::CompleteAuthorizationRequest& request,
                      absl::Time deadline,
                      std::function<void(absl::StatusOr<CompleteResult>)> done) {
  if (absl::Status allowed = CheckRpcAllowed(caller.permissions.get(), Rpc::kComplete);
      !allowed.ok()) {
    return done(allowed);
  }
  if (request.state().empty()) {
    return done(InvalidArgument(reason::kStateMissing, "state is required"));
  }
  if (!IsWellFormedState(request.state())) {
    return done(MakeError(absl::StatusCode::kNotFound, reason::kStateNotFound,
                          "the state parameter is unknown"));
  }
  const bool has_code = !request.code().empty();
  const bool has_error = !request.error().empty();
  if (has_code == has_error) {
    return done(InvalidArgument(reason::kInvalidCompletion,
                                "exactly one of code and error must be set"));
  }
  if (has_code && (request.code().size() > kMaxCodeBytes || !IsVisibleAscii(request.code(), false))) {
    return done(InvalidArgument(reason::kInvalidCompletion,
                                "code must be at most 4096 printable ASCII characters"));
  }
  if (has_error && (request.error().size() > 128 || !IsVisibleAscii(request.error(), false))) {
    return done(InvalidArgument(reason::kInvalidCompletion,
                                "error must be at most 128 printable ASCII characters"));
  }
  Completion completion;
  completion.code = request.code();
  completion.error = request.error();
  completion.error_description = CleanText(request.error_description(), kMaxDescriptionBytes);
  auto record = deps_.store->Complete(HashState(request.state()), completion);
  if (!record.ok()) {
    // (An expiry found here wakes no one: waiters have their own timer at expire_time.)
    return done(record.status());
  }
  absl::Time now = absl::Now();
  absl::Time activation_deadline = std::min(now + kMaxActivation, deadline - kActivationMargin);
  if (record->state == Authorization::STATE_ACTIVE && !settings_.activation_path.empty() &&
      activation_deadline - now >= kMinActivation) {
    // Waiters are woken only after the activation call, so that a wait never reports ACTIVE for
    // a code Leyr is about to reject.
    Changed(*record, Authorization::STATE_PENDING, /*notify=*/false);
    return Activate(std::move(*record), activation_deadline, std::move(done));
  }
  Changed(*record, Authorization::STATE_PENDING);
  if (record->state == Authorization::STATE_ACTIVE && !settings_.activation_path.empty()) {
    // Too little time left to ask Leyr and still answer: the first CallLeyr redeems the code.
    LEYR_LOG(Warn, "activation_skipped")
        .Field("authorization", absl::StrCat(kNamePrefix, record->id))
        .Field("detail", "the caller's deadline leaves no time for the activation call");
  }
  auto next = NextUri(*record);
  if (!next.ok()) return done(next.status());
  done(CompleteResult{std::move(*record), std::move(*next)});
}

void Broker::Activate(AuthorizationRecord record, absl::Time deadline,
                      std::function<void(absl::StatusOr<CompleteResult>)> done) {
  LeyrRequest request;
  request.method = "GET";
  request.path = absl::StrCat("/api/emrs/", record.emr, "/", settings_.activation_path);
  request.code = record.code;
  request.deadline = deadline;
  std::string id = record.id;
  deps_.leyr->Send(std::move(request), [this, record = std::move(record),
                                        done = std::move(done)](
                                           absl::StatusOr<LeyrResponse> response) mutable {
    if (!response.ok()) {
      // Leyr unreachable: the code is kept and the first CallLeyr redeems it.
      LEYR_LOG(Warn, "activation_failed")
          .Field("authorization", absl::StrCat(kNamePrefix, record.id))
          .Field("reason", ReasonOf(response.status()));
    } else {
      auto error = response->status_code >= 400 ? ParseLeyrError(response->body) : std::nullopt;
      Transition t;
      t.from = {Authorization::STATE_ACTIVE};
      if (IsGrantRejected(response->status_code, error)) {
        t.to = Authorization::STATE_REAUTHORIZATION_REQUIRED;
      } else if (response->status_code >= 200 && response->status_code < 300) {
        t.activated = true;
      } else {
        LEYR_LOG(Warn, "activation_failed")
            .Field("authorization", absl::StrCat(kNamePrefix, record.id))
            .Field("leyr_status", response->status_code);
      }
      if (t.to || t.activated) {
        auto updated = deps_.store->Update(record.id, t);
        if (updated.ok()) {
          if (t.to) Changed(*updated, Authorization::STATE_ACTIVE, /*notify=*/false);
          record = std::move(*updated);
        }
      }
    }
    deps_.events->Notify(record.id);  // the activation's outcome is known: wake waiters now
    auto next = NextUri(record);
    if (!next.ok()) return done(next.status());
    done(CompleteResult{std::move(record), std::move(*next)});
  });
}

absl::StatusOr<AuthorizationRecord> Broker::Get(const Caller& caller, absl::string_view name) {
  LEYR_RETURN_IF_ERROR(CheckRpcAllowed(caller.permissions.get(), Rpc::kGet));
  LEYR_ASSIGN_OR_RETURN(std::string id, ParseName(name, "name"));
  LEYR_ASSIGN_OR_RETURN(AuthorizationRecord record, deps_.store->Get(id));
  if (!MaySee(caller, record, &CallerPermissions::use)) return AuthorizationNotFound();
  return record;
}

std::shared_ptr<PendingWait> Broker::Wait(
    const Caller& caller, absl::string_view name, absl::Duration timeout,
    std::function<void(absl::StatusOr<AuthorizationRecord>)> done) {
  auto state = std::make_shared<WaitState>(deps_.events, deps_.scheduler, std::move(done));
  if (absl::Status allowed = CheckRpcAllowed(caller.permissions.get(), Rpc::kWait);
      !allowed.ok()) {
    state->Finish(allowed);
    return state;
  }
  auto id = ParseName(name, "name");
  if (!id.ok()) {
    state->Finish(id.status());
    return state;
  }
  // Owner and connection never change, so one look decides visibility for the whole wait.
  if (auto seen = deps_.store->Get(*id); seen.ok() && !MaySee(caller, *seen, &CallerPermissions::use)) {
    state->Finish(AuthorizationNotFound());
    return state;
  }
  if (timeout <= absl::ZeroDuration() || timeout > kMaxWait) timeout = kMaxWait;
  // The subscription and the timer hold the wait until it finishes (Finish drops both), so
  // `done` runs even when the caller lets go of the returned handle.
  Store* store = deps_.store;
  std::string record_id = *id;
  const std::atomic<bool>* draining = &draining_;
  auto check = [s = state, store, record_id, draining](bool final) {
    auto record = store->Get(record_id);
    if (final || !record.ok() || record->state != Authorization::STATE_PENDING) {
      s->Finish(std::move(record));
    } else if (draining->load()) {
      s->Finish(MakeError(absl::StatusCode::kUnavailable, reason::kShuttingDown,
                          "this broker replica is shutting down; retry the wait"));
    }
  };
  uint64_t subscription = deps_.events->Subscribe(record_id, [check] { check(false); });
  // Expiry makes no event: wake up when the state expires, too.
  auto record = store->Get(record_id);
  if (record.ok() && record->state == Authorization::STATE_PENDING) {
    absl::Duration until_expiry = record->expire_time - deps_.clock->Now();
    if (until_expiry < timeout) timeout = std::max(until_expiry, absl::ZeroDuration()) + absl::Milliseconds(1);
  }
  uint64_t timer = deps_.scheduler->After(timeout, [check] { check(true); });
  state->Arm(subscription, timer);
  if (!record.ok() || record->state != Authorization::STATE_PENDING) {
    state->Finish(std::move(record));
  } else if (draining_.load()) {
    check(false);
  }
  return state;
}

void Broker::StartDraining() {
  draining_ = true;
  deps_.events->NotifyAllLocal();  // every wait re-checks, and ends if still pending
}

absl::StatusOr<Broker::ListResult> Broker::List(
    const Caller& caller, const broker::v1::ListAuthorizationsRequest& request) {
  LEYR_RETURN_IF_ERROR(CheckRpcAllowed(caller.permissions.get(), Rpc::kList));
  if (request.page_size() < 0 || request.page_size() > 1000) {
    return InvalidArgument(reason::kInvalidArgument, "page_size must be between 0 and 1000");
  }
  ListQuery query;
  query.page_size = request.page_size() == 0 ? 100 : request.page_size();
  query.connection = request.connection();
  if (!request.page_token().empty()) {
    std::string decoded;
    std::vector<std::string> parts;
    int64_t nanos = 0;
    if (request.page_token().size() > 256 ||
        !absl::WebSafeBase64Unescape(request.page_token(), &decoded) ||
        (parts = absl::StrSplit(decoded, absl::MaxSplits(':', 1))).size() != 2 ||
        !absl::SimpleAtoi(parts[0], &nanos) || parts[1].size() != 22) {
      return InvalidArgument(reason::kInvalidPageToken, "page_token is not a token this broker issued");
    }
    query.after = std::make_pair(absl::FromUnixNanos(nanos), parts[1]);
  }
  const CallerPermissions* permissions = caller.permissions.get();
  if (permissions != nullptr) {
    if (!permissions->all_owners) query.owner = caller.identity;
    // A connection it may not use lists nothing, as if it had no authorizations.
    if (!query.connection.empty() && !permissions->use.Contains(query.connection)) {
      return ListResult{};
    }
  }
  // Ask for one more than a page to know whether there is a next one. Records the caller may
  // not see are skipped, reading further store pages until the page is full.
  const size_t wanted = static_cast<size_t>(query.page_size) + 1;
  std::vector<AuthorizationRecord> records;
  while (records.size() < wanted) {
    query.page_size = static_cast<int>(wanted);
    LEYR_ASSIGN_OR_RETURN(std::vector<AuthorizationRecord> batch, deps_.store->List(query));
    const bool last_batch = batch.size() < wanted;
    if (!batch.empty()) {
      query.after = std::make_pair(batch.back().create_time, batch.back().id);
    }
    for (auto& record : batch) {
      if (records.size() < wanted && MaySee(caller, record, &CallerPermissions::use)) {
        records.push_back(std::move(record));
      }
    }
    if (last_batch) break;
  }
  ListResult result;
  if (records.size() == wanted) {
    records.pop_back();
    result.next_page_token = EncodePageToken(records.back());
  }
  result.records = std::move(records);
  return result;
}

absl::StatusOr<AuthorizationRecord> Broker::Revoke(const Caller& caller, absl::string_view name) {
  LEYR_RETURN_IF_ERROR(CheckRpcAllowed(caller.permissions.get(), Rpc::kRevoke));
  LEYR_ASSIGN_OR_RETURN(std::string id, ParseName(name, "name"));
  Transition t;
  t.from = {Authorization::STATE_PENDING, Authorization::STATE_ACTIVE,
            Authorization::STATE_REAUTHORIZATION_REQUIRED};
  t.to = Authorization::STATE_REVOKED;
  t.clear_code = true;
  LEYR_ASSIGN_OR_RETURN(AuthorizationRecord before, deps_.store->Get(id));
  if (!MaySee(caller, before, &CallerPermissions::use) &&
      !MaySee(caller, before, &CallerPermissions::revoke)) {
    return AuthorizationNotFound();
  }
  if (!MaySee(caller, before, &CallerPermissions::revoke)) {
    return MakeError(absl::StatusCode::kPermissionDenied, reason::kConnectionNotAllowed,
                     "this caller may not revoke authorizations of this connection");
  }
  auto updated = deps_.store->Update(id, t);
  if (!updated.ok()) {
    // Already ended: revoking changes nothing and succeeds.
    if (updated.status().code() == absl::StatusCode::kFailedPrecondition) return deps_.store->Get(id);
    return updated.status();
  }
  Changed(*updated, before.state);
  return updated;
}

void Broker::CallLeyr(const Caller& caller, const broker::v1::CallLeyrRequest& request,
                      absl::Time deadline,
                      std::function<void(absl::StatusOr<broker::v1::CallLeyrResponse>)> done,
                      std::string* connection) {
  if (absl::Status allowed = CheckRpcAllowed(caller.permissions.get(), Rpc::kCallLeyr);
      !allowed.ok()) {
    return done(allowed);
  }
  auto id = ParseName(request.authorization(), "authorization");
  if (!id.ok()) return done(id.status());
  auto record = deps_.store->Get(*id);
  if (!record.ok()) return done(record.status());
  if (!MaySee(caller, *record, &CallerPermissions::use)) return done(AuthorizationNotFound());
  if (connection != nullptr) *connection = record->connection;
  if (record->state != Authorization::STATE_ACTIVE) return done(StateError(record->state));
  auto leyr_request = CheckLeyrCall(request, record->emr, call_policy_);
  if (!leyr_request.ok()) return done(leyr_request.status());
  leyr_request->code = record->code;
  leyr_request->deadline = deadline;
  deps_.leyr->Send(std::move(*leyr_request), [this, id = *id, done = std::move(done)](
                                                 absl::StatusOr<LeyrResponse> response) {
    if (!response.ok()) return done(response.status());
    broker::v1::CallLeyrResponse out;
    out.set_status_code(response->status_code);
    if (response->status_code >= 400) {
      auto error = ParseLeyrError(response->body);
      if (IsGrantRejected(response->status_code, error)) {
        Transition t;
        t.from = {Authorization::STATE_ACTIVE};
        t.to = Authorization::STATE_REAUTHORIZATION_REQUIRED;
        auto updated = deps_.store->Update(id, t);
        if (updated.ok()) Changed(*updated, Authorization::STATE_ACTIVE);
        return done(StateError(Authorization::STATE_REAUTHORIZATION_REQUIRED));
      }
      if (error) *out.mutable_leyr_error() = std::move(*error);
    }
    for (auto& [name, value] : response->headers) {
      auto* h = out.add_headers();
      h->set_name(std::move(name));
      h->set_value(std::move(value));
    }
    out.set_body(std::move(response->body));
    done(std::move(out));
  });
}

void Broker::Sweep() {
  auto removed = deps_.store->Sweep(deps_.clock->Now() - settings_.retention);
  if (!removed.ok()) {
    LEYR_LOG(Warn, "sweep_failed").Field("reason", ReasonOf(removed.status()));
  } else if (*removed > 0) {
    LEYR_LOG(Info, "swept").Field("removed", *removed);
  }
}

}  // namespace leyr
