#ifndef LEYR_SERVER_BROKER_POLICY_H_
#define LEYR_SERVER_BROKER_POLICY_H_

#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "config/config.pb.h"

namespace leyr {

// A set of connection names, or every connection ("*").
struct ConnectionSet {
  bool all = false;
  std::set<std::string> names;
  bool Contains(absl::string_view name) const { return all || names.count(std::string(name)); }
};

// What one caller may do (one CallerPolicy of the policy file, validated).
struct CallerPermissions {
  std::string caller;
  bool shim = false;  // CompleteAuthorization only
  ConnectionSet begin;
  ConnectionSet use;
  ConnectionSet revoke;
  std::set<std::string> return_uri_origins;  // canonical origins
  bool all_owners = false;
};

// The RPCs a policy speaks about.
enum class Rpc { kBegin, kComplete, kGet, kWait, kList, kRevoke, kCallLeyr };

// The broker's policy file: permissions by caller name. Immutable once loaded.
class Policy {
 public:
  // Validates `config`. `connections` are the configured connection names: a policy that names
  // an unknown connection is refused (a typo would silently deny). Errors list every bad key.
  static absl::StatusOr<Policy> FromConfig(const config::BrokerPolicy& config,
                                           const std::set<std::string>& connections);
  // Loads a JSON policy file (leyr::LoadJsonConfig) and validates it.
  static absl::StatusOr<Policy> Load(absl::string_view path,
                                     const std::set<std::string>& connections);

  // The permissions of `caller`, or nullptr when the policy does not name it.
  std::shared_ptr<const CallerPermissions> Find(absl::string_view caller) const;
  size_t size() const { return callers_.size(); }

 private:
  std::map<std::string, std::shared_ptr<const CallerPermissions>, std::less<>> callers_;
};

// PERMISSION_DENIED (RPC_NOT_ALLOWED) when `permissions` may not call `rpc` at all: the shim
// may only complete, and only the shim may complete. nullptr permissions (no policy) allow all.
absl::Status CheckRpcAllowed(const CallerPermissions* permissions, Rpc rpc);

}  // namespace leyr

#endif  // LEYR_SERVER_BROKER_POLICY_H_
