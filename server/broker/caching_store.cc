#include "server/broker/caching_store.h"

namespace leyr {

CachingStore::CachingStore(Store* inner, Clock* clock, absl::Duration ttl,
                           std::function<bool()> announcements_reliable)
    : inner_(inner),
      clock_(clock),
      ttl_(ttl),
      announcements_reliable_(std::move(announcements_reliable)) {}

void CachingStore::Invalidate(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  ++generation_;
  if (id.empty()) {
    entries_.clear();
  } else {
    entries_.erase(id);
  }
}

int64_t CachingStore::inner_reads() {
  absl::MutexLock lock(&mu_);
  return inner_reads_;
}

absl::Status CachingStore::Insert(const AuthorizationRecord& record,
                                  const std::string& state_hash) {
  return inner_->Insert(record, state_hash);
}

absl::StatusOr<AuthorizationRecord> CachingStore::Get(absl::string_view id) {
  const absl::Time now = clock_->Now();
  const bool reliable = !announcements_reliable_ || announcements_reliable_();
  uint64_t generation;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(id);
    if (it != entries_.end()) {
      if (reliable && now < it->second.expires) return it->second.record;
      entries_.erase(it);
    }
    generation = generation_;
    ++inner_reads_;
  }
  auto record = inner_->Get(id);
  // Only ACTIVE records: they do not change with time, and they are what CallLeyr reads.
  if (record.ok() && reliable && record->state == broker::v1::Authorization::STATE_ACTIVE) {
    absl::MutexLock lock(&mu_);
    if (generation == generation_) entries_[id] = Entry{*record, now + ttl_};
  }
  return record;
}

absl::StatusOr<AuthorizationRecord> CachingStore::Complete(const std::string& state_hash,
                                                           const Completion& completion) {
  auto record = inner_->Complete(state_hash, completion);
  if (record.ok()) Invalidate(record->id);
  return record;
}

absl::StatusOr<AuthorizationRecord> CachingStore::Update(absl::string_view id,
                                                         const Transition& transition) {
  Invalidate(id);
  auto record = inner_->Update(id, transition);
  Invalidate(id);
  return record;
}

absl::StatusOr<std::vector<AuthorizationRecord>> CachingStore::List(const ListQuery& query) {
  return inner_->List(query);
}

absl::StatusOr<int> CachingStore::Sweep(absl::Time cutoff) {
  auto removed = inner_->Sweep(cutoff);
  Invalidate("");
  return removed;
}

absl::StatusOr<std::map<AuthState, int64_t>> CachingStore::CountByState() {
  return inner_->CountByState();
}

}  // namespace leyr
