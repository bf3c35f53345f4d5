#include "generate/internal/directory.h"

#include <cstdio>

#include "generate/internal/tables.h"

namespace fhirstone::generate::internal {
namespace {

constexpr uint64_t kDirectorySeed = 0x6469726563746f72ull;  // fixed: the same for every data set

// clang-format off
const Organization kOrganizations[] = {
    {"gen-hospital-riverside", "Riverside General Hospital", OrgKind::kHospital,
     "250 Riverside Avenue", "Boston", "MA", "02118", "617-555-0100", ""},
    {"gen-hospital-saint-brigid", "Saint Brigid Medical Center", OrgKind::kHospital,
     "1 Brigid Way", "Worcester", "MA", "01609", "508-555-0110", ""},
    {"gen-hospital-narragansett", "Narragansett Bay Hospital", OrgKind::kHospital,
     "400 Harbor Street", "Providence", "RI", "02903", "401-555-0120", ""},
    {"gen-hospital-granite-state", "Granite State Regional Hospital", OrgKind::kHospital,
     "75 Merrimack Street", "Manchester", "NH", "03101", "603-555-0130", ""},
    {"gen-hospital-elm-city", "Elm City General Hospital", OrgKind::kHospital,
     "20 Green Street", "New Haven", "CT", "06511", "203-555-0140", ""},
    {"gen-clinic-maple-street", "Maple Street Family Practice", OrgKind::kClinic,
     "12 Maple Street", "Cambridge", "MA", "02139", "617-555-0150", ""},
    {"gen-clinic-bayside", "Bayside Community Health Center", OrgKind::kClinic,
     "88 Shore Road", "Quincy", "MA", "02169", "617-555-0160", ""},
    {"gen-clinic-northgate-pediatrics", "Northgate Pediatrics", OrgKind::kPediatrics,
     "301 Northgate Drive", "Lowell", "MA", "01852", "978-555-0170", ""},
    {"gen-clinic-river-valley", "River Valley Primary Care", OrgKind::kClinic,
     "45 Asylum Avenue", "Hartford", "CT", "06103", "860-555-0180", ""},
    {"gen-payer-medicare", "Medicare", OrgKind::kPayer,
     "7500 Security Boulevard", "Baltimore", "MD", "21244", "800-555-0190", "PUBLICPOL"},
    {"gen-payer-medicaid", "Medicaid", OrgKind::kPayer,
     "7500 Security Boulevard", "Baltimore", "MD", "21244", "800-555-0191", "PUBLICPOL"},
    {"gen-payer-evergreen", "Evergreen Health Plan", OrgKind::kPayer,
     "900 Commonwealth Avenue", "Boston", "MA", "02118", "800-555-0192", "HIP"},
    {"gen-payer-summit", "Summit Mutual Health", OrgKind::kPayer,
     "10 Capitol Street", "Concord", "NH", "03301", "800-555-0193", "HIP"},
    {"gen-payer-bluewater", "Bluewater Health Insurance", OrgKind::kPayer,
     "1 Financial Plaza", "Providence", "RI", "02903", "800-555-0194", "HIP"},
};
// clang-format on

// The practitioners of each kind of organization.
constexpr Specialty kHospitalStaff[] = {Specialty::kEmergency, Specialty::kEmergency,
                                        Specialty::kInternal, Specialty::kCardiology};
constexpr Specialty kClinicStaff[] = {Specialty::kFamily, Specialty::kFamily, Specialty::kGeneral};
constexpr Specialty kPediatricStaff[] = {Specialty::kPediatrics, Specialty::kPediatrics,
                                         Specialty::kPediatrics};

Code SpecialtyCode(Specialty s) {
  switch (s) {
    case Specialty::kFamily:
      return {kSnomed, "419772000", "Family practice"};
    case Specialty::kGeneral:
      return {kSnomed, "394814009", "General practice"};
    case Specialty::kPediatrics:
      return {kSnomed, "394537008", "Pediatric specialty"};
    case Specialty::kEmergency:
      return {kSnomed, "394576009", "Accident & emergency"};
    case Specialty::kInternal:
      return {kSnomed, "419192003", "Internal medicine"};
    case Specialty::kCardiology:
      return {kSnomed, "394579002", "Cardiology"};
  }
  return {};
}

json::Value AddressOf(std::string_view line, std::string_view city, std::string_view state,
                      std::string_view postal_code) {
  return Obj()
      .Add("use", "work")
      .Add("line", List(line))
      .Add("city", city)
      .Add("state", state)
      .Add("postalCode", postal_code)
      .Add("country", "US")
      .Build();
}

json::Value PutEntry(std::string_view type, std::string_view id, json::Value resource) {
  std::string url = std::string(type) + "/" + std::string(id);
  return Obj()
      .Add("resource", std::move(resource))
      .Add("request", Obj().Add("method", "PUT").Add("url", url).Build())
      .Build();
}

}  // namespace

std::string SyntheticNpi(int serial) {
  char digits[16];
  std::snprintf(digits, sizeof digits, "9999%05d", serial % 100000);
  // Luhn over "80840" + the nine digits, the check digit appended.
  std::string payload = std::string("80840") + digits;
  int sum = 0;
  bool twice = true;  // the rightmost payload digit is doubled
  for (size_t i = payload.size(); i-- > 0;) {
    int d = payload[i] - '0';
    if (twice) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    twice = !twice;
  }
  int check = (10 - sum % 10) % 10;
  return std::string(digits) + static_cast<char>('0' + check);
}

Directory::Directory() : organizations_(std::begin(kOrganizations), std::end(kOrganizations)) {
  Rng rng(kDirectorySeed);
  std::span<const Origin> origins = Origins();
  std::vector<double> weights;
  for (const Origin& o : origins) weights.push_back(o.weight);
  for (size_t org = 0; org < organizations_.size(); ++org) {
    std::span<const Specialty> staff;
    switch (organizations_[org].kind) {
      case OrgKind::kHospital:
        staff = kHospitalStaff;
        break;
      case OrgKind::kClinic:
        staff = kClinicStaff;
        break;
      case OrgKind::kPediatrics:
        staff = kPediatricStaff;
        break;
      case OrgKind::kPayer:
        break;
    }
    for (Specialty specialty : staff) {
      Practitioner p;
      int serial = static_cast<int>(practitioners_.size()) + 1;
      char id[48];
      std::snprintf(id, sizeof id, "gen-practitioner-%02d", serial);
      p.id = id;
      std::snprintf(id, sizeof id, "gen-practitioner-role-%02d", serial);
      p.role_id = id;
      const Origin& origin = origins[rng.Weighted(weights)];
      p.female = rng.Chance(0.5);
      p.given = std::string(rng.Pick(p.female ? origin.female : origin.male));
      p.family = std::string(rng.Pick(origin.family));
      p.npi = SyntheticNpi(1000 + serial * 37);
      p.organization = static_cast<int>(org);
      p.specialty = specialty;
      p.display = "Dr. " + p.given + " " + p.family;
      practitioners_.push_back(std::move(p));
    }
  }
}

int Directory::HospitalFor(std::string_view state) const {
  std::string_view id = state == "RI"   ? "gen-hospital-narragansett"
                        : state == "NH" ? "gen-hospital-granite-state"
                        : state == "CT" ? "gen-hospital-elm-city"
                                        : "gen-hospital-riverside";
  for (size_t i = 0; i < organizations_.size(); ++i)
    if (organizations_[i].id == id) return static_cast<int>(i);
  return 0;
}

int Directory::ClinicFor(std::string_view state, Rng& rng) const {
  std::string_view id = state == "CT"     ? "gen-clinic-river-valley"
                        : rng.Chance(0.5) ? "gen-clinic-maple-street"
                                          : "gen-clinic-bayside";
  for (size_t i = 0; i < organizations_.size(); ++i)
    if (organizations_[i].id == id) return static_cast<int>(i);
  return 0;
}

int Directory::PediatricClinic() const {
  for (size_t i = 0; i < organizations_.size(); ++i)
    if (organizations_[i].kind == OrgKind::kPediatrics) return static_cast<int>(i);
  return 0;
}

int Directory::PractitionerAt(int organization, Specialty specialty, Rng& rng) const {
  std::vector<int> exact, any;
  for (size_t i = 0; i < practitioners_.size(); ++i) {
    if (practitioners_[i].organization != organization) continue;
    any.push_back(static_cast<int>(i));
    if (practitioners_[i].specialty == specialty) exact.push_back(static_cast<int>(i));
  }
  const std::vector<int>& pool = exact.empty() ? any : exact;
  if (pool.empty()) return 0;
  return rng.Pick(std::span<const int>(pool));
}

int Directory::Medicare() const {
  for (size_t i = 0; i < organizations_.size(); ++i)
    if (organizations_[i].id == "gen-payer-medicare") return static_cast<int>(i);
  return 0;
}

int Directory::Medicaid() const {
  for (size_t i = 0; i < organizations_.size(); ++i)
    if (organizations_[i].id == "gen-payer-medicaid") return static_cast<int>(i);
  return 0;
}

int Directory::PrivatePlan(Rng& rng) const {
  std::vector<int> plans;
  for (size_t i = 0; i < organizations_.size(); ++i)
    if (organizations_[i].plan_type == "HIP") plans.push_back(static_cast<int>(i));
  return rng.Pick(std::span<const int>(plans));
}

std::string Directory::OrganizationRef(int index) const {
  return "Organization/" + std::string(organizations_[static_cast<size_t>(index)].id);
}

std::string Directory::PractitionerRef(int index) const {
  return "Practitioner/" + practitioners_[static_cast<size_t>(index)].id;
}

json::Value Directory::BatchBundle() const {
  json::Array entries;
  int serial = 0;
  for (const Organization& o : organizations_) {
    ++serial;
    bool payer = o.kind == OrgKind::kPayer;
    Obj org;
    org.Add("resourceType", "Organization").Add("id", o.id);
    if (!payer) {
      org.Add("identifier", List(Obj()
                                     .Add("system", kNpiSystem)
                                     .Add("value", SyntheticNpi(500 + serial * 11))
                                     .Build()));
    }
    org.Add("active", true)
        .Add("type", List(Concept(payer ? Code{kOrganizationType, "pay", "Payer"}
                                        : Code{kOrganizationType, "prov", "Healthcare Provider"})))
        .Add("name", o.name)
        .Add("telecom",
             List(Obj().Add("system", "phone").Add("value", o.phone).Add("use", "work").Build()))
        .Add("address", List(AddressOf(o.line, o.city, o.state, o.postal_code)));
    entries.push_back(PutEntry("Organization", o.id, org.Build()));
  }
  for (const Practitioner& p : practitioners_) {
    const Organization& o = organizations_[static_cast<size_t>(p.organization)];
    std::string email = AsciiLetters(p.given) + "." + AsciiLetters(p.family) + "@" +
                        std::string(o.id.substr(o.id.rfind('-') + 1)) + ".example.org";
    json::Value practitioner =
        Obj()
            .Add("resourceType", "Practitioner")
            .Add("id", p.id)
            .Add("identifier", List(Obj().Add("system", kNpiSystem).Add("value", p.npi).Build()))
            .Add("active", true)
            .Add("name", List(Obj()
                                  .Add("use", "official")
                                  .Add("family", p.family)
                                  .Add("given", List(p.given))
                                  .Add("prefix", List("Dr."))
                                  .Build()))
            .Add("telecom",
                 List(Obj().Add("system", "phone").Add("value", o.phone).Add("use", "work").Build(),
                      Obj().Add("system", "email").Add("value", email).Add("use", "work").Build()))
            .Add("address", List(AddressOf(o.line, o.city, o.state, o.postal_code)))
            .Add("gender", p.female ? "female" : "male")
            .Add("qualification",
                 List(Obj()
                          .Add("code", Concept({kDegreeLicense, "MD", "Doctor of Medicine"}))
                          .Build()))
            .Build();
    entries.push_back(PutEntry("Practitioner", p.id, std::move(practitioner)));
  }
  for (size_t i = 0; i < practitioners_.size(); ++i) {
    const Practitioner& p = practitioners_[i];
    json::Value role =
        Obj()
            .Add("resourceType", "PractitionerRole")
            .Add("id", p.role_id)
            .Add("active", true)
            .Add("practitioner", Ref(PractitionerRef(static_cast<int>(i)), p.display))
            .Add("organization", Ref(OrganizationRef(p.organization),
                                     organizations_[static_cast<size_t>(p.organization)].name))
            .Add("code", List(Concept({kPractitionerRoleCode, "doctor", "Doctor"})))
            .Add("specialty", List(Concept(SpecialtyCode(p.specialty))))
            .Build();
    entries.push_back(PutEntry("PractitionerRole", p.role_id, std::move(role)));
  }
  return Obj()
      .Add("resourceType", "Bundle")
      .Add("type", "batch")
      .Add("entry", json::Value(std::move(entries)))
      .Build();
}

}  // namespace fhirstone::generate::internal
