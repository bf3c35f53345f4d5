// SqlResourceStore: the ResourceStore over db::Database (one implementation for every dialect).
// Schema: `resource` holds the current version of each resource (read by primary key);
// `resource_history` every version in write order (`txid`), with the time it was superseded.
// Owns nothing but its prepared SQL; the Database, Clock and IdGenerator outlive it.
// Thread-safe: each call leases its own connection.
#pragma once

#include <memory>
#include <string>

#include "common/clock.h"
#include "db/database.h"
#include "search/registry.h"
#include "store/resource_store.h"

namespace fhirstone::store {

// Creates the schema if needed (migrations) and returns the store. With a registry, every write
// also writes the search index of the resource in the same transaction, with the registry in
// force at that time; the holder outlives the store. `fhir_base` is the server's FHIR base URL
// (absolute references under it are local resources; "" when there is none).
Result<std::unique_ptr<ResourceStore>> OpenSqlResourceStore(db::Database& db, Clock& clock,
                                                            IdGenerator& ids,
                                                            const search::RegistryHolder* registry,
                                                            std::string fhir_base);

}  // namespace fhirstone::store
