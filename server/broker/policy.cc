#include "server/broker/policy.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/config_util.h"
#include "server/common/status_util.h"
#include "server/common/url.h"

namespace leyr {
namespace {

absl::string_view RpcName(Rpc rpc) {
  switch (rpc) {
    case Rpc::kBegin: return "BeginAuthorization";
    case Rpc::kComplete: return "CompleteAuthorization";
    case Rpc::kGet: return "GetAuthorization";
    case Rpc::kWait: return "WaitAuthorization";
    case Rpc::kList: return "ListAuthorizations";
    case Rpc::kRevoke: return "RevokeAuthorization";
    case Rpc::kCallLeyr: return "CallLeyr";
  }
  return "?";
}

ConnectionSet ParseSet(const std::string& key,
                       const google::protobuf::RepeatedPtrField<std::string>& values,
                       const std::set<std::string>& connections,
                       std::vector<std::string>& problems) {
  ConnectionSet set;
  for (int i = 0; i < values.size(); ++i) {
    const std::string& v = values.Get(i);
    if (v == "*") {
      set.all = true;
    } else if (!connections.count(v)) {
      problems.push_back(absl::StrCat(key, "[", i, "]: names no configured connection ('", v, "')"));
    } else {
      set.names.insert(v);
    }
  }
  return set;
}

}  // namespace

absl::StatusOr<Policy> Policy::FromConfig(const config::BrokerPolicy& config,
                                          const std::set<std::string>& connections) {
  std::vector<std::string> problems;
  Policy policy;
  if (config.callers().empty()) problems.push_back("callers: at least one is required");
  for (int i = 0; i < config.callers_size(); ++i) {
    const auto& c = config.callers(i);
    std::string key = absl::StrCat("callers[", i, "]");
    auto p = std::make_shared<CallerPermissions>();
    p->caller = c.caller();
    if (p->caller.empty() || p->caller.size() > 512) {
      problems.push_back(key + ".caller: required (a certificate SAN or a token's caller name)");
    } else if (policy.callers_.count(p->caller)) {
      problems.push_back(absl::StrCat(key, ".caller: duplicate caller '", p->caller, "'"));
    }
    p->shim = c.shim();
    p->all_owners = c.all_owners();
    p->begin = ParseSet(key + ".begin", c.begin(), connections, problems);
    p->use = ParseSet(key + ".use", c.use(), connections, problems);
    p->revoke = ParseSet(key + ".revoke", c.revoke(), connections, problems);
    if (p->shim && (!c.begin().empty() || !c.use().empty() || !c.revoke().empty() ||
                    !c.return_uri_origins().empty() || c.all_owners())) {
      problems.push_back(key + ": a shim may only complete authorizations; remove begin, use, "
                               "revoke, return_uri_origins and all_owners");
    }
    for (int j = 0; j < c.return_uri_origins_size(); ++j) {
      auto origin = CanonicalOrigin(c.return_uri_origins(j));
      if (!origin.ok()) {
        problems.push_back(absl::StrCat(key, ".return_uri_origins[", j,
                                        "]: must be an origin such as https://app.example.com"));
      } else {
        p->return_uri_origins.insert(*origin);
      }
    }
    if (!p->caller.empty()) policy.callers_.emplace(p->caller, std::move(p));
  }
  if (!problems.empty()) return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  return policy;
}

absl::StatusOr<Policy> Policy::Load(absl::string_view path,
                                    const std::set<std::string>& connections) {
  config::BrokerPolicy config;
  LEYR_RETURN_IF_ERROR(LoadJsonConfig(path, &config));
  return FromConfig(config, connections);
}

std::shared_ptr<const CallerPermissions> Policy::Find(absl::string_view caller) const {
  auto it = callers_.find(caller);
  return it == callers_.end() ? nullptr : it->second;
}

absl::Status CheckRpcAllowed(const CallerPermissions* permissions, Rpc rpc) {
  if (permissions == nullptr) return absl::OkStatus();
  if (permissions->shim != (rpc == Rpc::kComplete)) {
    return MakeError(absl::StatusCode::kPermissionDenied, reason::kRpcNotAllowed,
                     absl::StrCat("this caller may not call ", RpcName(rpc)));
  }
  return absl::OkStatus();
}

}  // namespace leyr
