#include "server/broker/memory_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/status_util.h"

namespace leyr {

using broker::v1::Authorization;

bool IsEnded(AuthState state) {
  return state == Authorization::STATE_DENIED || state == Authorization::STATE_EXPIRED ||
         state == Authorization::STATE_REVOKED;
}

void MemoryStore::ApplyExpiry(AuthorizationRecord& record, absl::Time now) {
  if (record.state == Authorization::STATE_PENDING && now >= record.expire_time) {
    record.state = Authorization::STATE_EXPIRED;
    record.update_time = record.expire_time;
  }
}

absl::StatusOr<AuthorizationRecord> MemoryStore::Opened(const AuthorizationRecord& stored) {
  AuthorizationRecord out = stored;
  if (!stored.code.empty()) {
    auto code = sealer_->Open(stored.code, stored.id);
    if (!code.ok()) {
      return MakeError(absl::StatusCode::kInternal, reason::kInternal,
                       absl::StrCat("the stored code could not be opened: ", code.status().message()));
    }
    out.code = std::move(*code);
  }
  return out;
}

std::string MemoryStore::SealedCodeForTesting(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(id);
  return it == records_.end() ? "" : it->second.code;
}

void MemoryStore::SetSealedCodeForTesting(absl::string_view id, std::string sealed) {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(id);
  if (it != records_.end()) it->second.code = std::move(sealed);
}

absl::Status MemoryStore::Insert(const AuthorizationRecord& record,
                                 const std::string& state_hash) {
  absl::MutexLock lock(&mu_);
  if (records_.contains(record.id) || states_.contains(state_hash)) {
    return MakeError(absl::StatusCode::kAlreadyExists, reason::kInternal,
                     "authorization id or state collision");
  }
  AuthorizationRecord stored = record;
  if (!stored.code.empty()) {
    LEYR_ASSIGN_OR_RETURN(stored.code, sealer_->Seal(record.code, record.id));
  }
  records_.emplace(record.id, std::move(stored));
  states_.emplace(state_hash, StateEntry{record.id, false});
  return absl::OkStatus();
}

absl::StatusOr<AuthorizationRecord> MemoryStore::Get(absl::string_view id) {
  absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto it = records_.find(id);
  if (it == records_.end()) {
    return MakeError(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound,
                     "authorization not found");
  }
  ApplyExpiry(it->second, now);
  return Opened(it->second);
}

absl::StatusOr<AuthorizationRecord> MemoryStore::Complete(const std::string& state_hash,
                                                          const Completion& completion) {
  absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto state_it = states_.find(state_hash);
  if (state_it == states_.end()) {
    return MakeError(absl::StatusCode::kNotFound, reason::kStateNotFound,
                     "the state parameter is unknown");
  }
  if (state_it->second.consumed) {
    return MakeError(absl::StatusCode::kFailedPrecondition, reason::kStateAlreadyUsed,
                     "the state parameter was already used");
  }
  state_it->second.consumed = true;
  auto it = records_.find(state_it->second.id);
  if (it == records_.end()) {
    return MakeError(absl::StatusCode::kNotFound, reason::kStateNotFound,
                     "the state parameter is unknown");
  }
  AuthorizationRecord& record = it->second;
  ApplyExpiry(record, now);
  if (record.state == Authorization::STATE_EXPIRED) {
    return MakeError(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationExpired,
                     "the authorization expired before the callback arrived");
  }
  if (record.state != Authorization::STATE_PENDING) {
    return MakeError(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive,
                     "the authorization was revoked before the callback arrived");
  }
  if (!completion.code.empty()) {
    // Sealed before anything changes, so a sealing failure leaves the record PENDING (the
    // state stays consumed: a state is single use whatever happens).
    LEYR_ASSIGN_OR_RETURN(std::string sealed, sealer_->Seal(completion.code, record.id));
    record.state = Authorization::STATE_ACTIVE;
    record.code = std::move(sealed);
  } else {
    record.state = Authorization::STATE_DENIED;
    record.denial_error = completion.error;
    record.denial_description = completion.error_description;
  }
  record.update_time = now;
  return Opened(record);
}

absl::StatusOr<AuthorizationRecord> MemoryStore::Update(absl::string_view id,
                                                        const Transition& transition) {
  absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto it = records_.find(id);
  if (it == records_.end()) {
    return MakeError(absl::StatusCode::kNotFound, reason::kAuthorizationNotFound,
                     "authorization not found");
  }
  AuthorizationRecord& record = it->second;
  ApplyExpiry(record, now);
  if (std::find(transition.from.begin(), transition.from.end(), record.state) ==
      transition.from.end()) {
    return MakeError(absl::StatusCode::kFailedPrecondition, reason::kAuthorizationNotActive,
                     "the authorization is not in a state that allows this change");
  }
  if (transition.to) record.state = *transition.to;
  if (transition.activated) record.activated = *transition.activated;
  if (transition.clear_code) record.code.clear();
  record.update_time = now;
  return Opened(record);
}

absl::StatusOr<std::vector<AuthorizationRecord>> MemoryStore::List(const ListQuery& query) {
  absl::Time now = clock_->Now();
  std::vector<AuthorizationRecord> out;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, record] : records_) {
      if (!query.connection.empty() && record.connection != query.connection) continue;
      if (!query.owner.empty() && record.owner != query.owner) continue;
      if (query.after) {
        const auto& [time, after_id] = *query.after;
        // Newest first: keep only records strictly after the bound in that order.
        if (record.create_time > time || (record.create_time == time && record.id >= after_id)) {
          continue;
        }
      }
      ApplyExpiry(record, now);
      LEYR_ASSIGN_OR_RETURN(AuthorizationRecord opened, Opened(record));
      out.push_back(std::move(opened));
    }
  }
  std::sort(out.begin(), out.end(), [](const AuthorizationRecord& a, const AuthorizationRecord& b) {
    if (a.create_time != b.create_time) return a.create_time > b.create_time;
    return a.id > b.id;
  });
  if (out.size() > static_cast<size_t>(query.page_size)) out.resize(query.page_size);
  return out;
}

absl::StatusOr<int> MemoryStore::Sweep(absl::Time cutoff) {
  absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  int removed = 0;
  for (auto it = records_.begin(); it != records_.end();) {
    ApplyExpiry(it->second, now);
    if (IsEnded(it->second.state) && it->second.update_time < cutoff) {
      records_.erase(it++);
      ++removed;
    } else {
      ++it;
    }
  }
  for (auto it = states_.begin(); it != states_.end();) {
    if (!records_.contains(it->second.id)) {
      states_.erase(it++);
    } else {
      ++it;
    }
  }
  return removed;
}

absl::StatusOr<std::map<AuthState, int64_t>> MemoryStore::CountByState() {
  absl::Time now = clock_->Now();
  std::map<AuthState, int64_t> counts;
  absl::MutexLock lock(&mu_);
  for (auto& [id, record] : records_) {
    ApplyExpiry(record, now);
    ++counts[record.state];
  }
  return counts;
}

}  // namespace leyr
