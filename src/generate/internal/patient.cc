#include "generate/internal/patient.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "generate/internal/fhir.h"
#include "generate/internal/random.h"
#include "generate/internal/tables.h"

namespace fhirstone::generate::internal {
namespace {

constexpr int64_t kNever = INT64_MIN;
constexpr int64_t kMonth = kDay * 30 + kDay * 10 / 23;  // 30.44 days
constexpr std::string_view kMrnSystem = "https://fhirstone.example.org/sid/mrn";
constexpr std::string_view kUsCoreRace =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race";
constexpr std::string_view kUsCoreEthnicity =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity";
constexpr std::string_view kUsCoreBirthSex =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex";

constexpr CurvePoint kHeartRateByAge[] = {{0, 135}, {1, 120}, {3, 105}, {6, 95},
                                          {12, 82}, {18, 74}, {95, 72}};
constexpr CurvePoint kRespiratoryRateByAge[] = {{0, 38},  {1, 30},  {3, 25}, {6, 21},
                                                {12, 18}, {18, 15}, {95, 16}};

int64_t Years(double years) { return static_cast<int64_t>(years * kYear); }
int64_t Days(double days) { return static_cast<int64_t>(days * static_cast<double>(kDay)); }

// 0 before `from`, 1 after `to`, linear between; 0 when `from` is kNever.
double Ramp(int64_t t, int64_t from, int64_t to) {
  if (from == kNever || t <= from) return 0;
  if (t >= to) return 1;
  return static_cast<double>(t - from) / static_cast<double>(to - from);
}

// A slow random walk with one knot per year of age, interpolated linearly: the smooth part of a
// value's evolution over a life.
class Trend {
 public:
  Trend(Rng& rng, int years, double sd, double keep) {
    double v = rng.Normal() * sd;
    values_.reserve(static_cast<size_t>(years) + 2);
    for (int i = 0; i < years + 2; ++i) {
      values_.push_back(v);
      v = keep * v + rng.Normal() * sd;
    }
  }
  double At(double age) const {
    if (age <= 0) return values_.front();
    size_t i = static_cast<size_t>(age);
    if (i + 1 >= values_.size()) return values_.back();
    double f = age - static_cast<double>(i);
    return values_[i] + (values_[i + 1] - values_[i]) * f;
  }

 private:
  std::vector<double> values_;
};

enum class Kind { kWellness, kFollowUp, kProblem, kAcute, kEmergency, kInpatient };
enum class Smoking { kNone, kNever, kFormer, kCurrent };

struct ConditionRec {
  Code code;
  bool chronic = false;
  Chronic kind = Chronic::kHypertension;
  int64_t latent = kNever;     // the disease process starts (drives the physiology)
  int64_t onset = kNever;      // onsetDateTime
  int64_t abatement = kNever;  // abatementDateTime
  int64_t treated = kNever;    // first-line treatment starts
  int64_t second_line = kNever;
  bool recorded = false;
  int encounter = -1;  // the diagnosing encounter, after sorting; -1: before the window
  const AcuteDef* acute = nullptr;
  const AdmissionDef* admission = nullptr;
  std::string urn;
};

struct MedOrder {
  const MedDef* med;
  int condition;  // -1: none (e.g. epinephrine for an allergy)
  int allergy;    // -1: none
  std::string status;
  std::string urn;
};

struct EncounterRec {
  Kind kind;
  int64_t start;
  int64_t end;
  int reason = -1;  // condition index
  bool fever = false;
  int organization = 0;
  int practitioner = 0;
  std::vector<int> diagnoses;  // conditions diagnosed here
  std::vector<int> allergies;  // allergies recorded here
  std::vector<Code> vaccines;
  std::vector<MedOrder> orders;
  std::string urn;
  int sequence = 0;  // creation order: the tie-breaker of the sort
};

struct AllergyRec {
  const AllergyDef* def;
  int64_t onset;
  int encounter = -1;
  std::string urn;
};

struct CoverageRec {
  int payer;
  int64_t start;
  int64_t end;  // kNever: open
  bool child;
  std::string subscriber_id;
  std::string urn;
};

class PatientBuilder {
 public:
  PatientBuilder(const Directory& directory, const GenerateOptions& options, int64_t index)
      : dir_(directory),
        options_(options),
        index_(index),
        rng_(Mix(options.seed, static_cast<uint64_t>(index))),
        uuids_(Mix(options.seed ^ 0x75756964ull, static_cast<uint64_t>(index))),
        now_(options.now_micros) {}

  json::Value Build() {
    Demographics();
    Traits();
    ChronicConditions();
    Coverages();
    ScheduleWellness();
    DiagnoseAtCheckups();
    ScheduleProblemVisits();
    ScheduleAdmissions();
    ScheduleAcute();
    ScheduleExacerbations();
    ScheduleFollowUps();
    SortEncounters();
    AssignCareProviders();
    PlaceAllergies();
    PlaceImmunizations();
    PlaceMedications();
    return Render();
  }

 private:
  // ---- Time ------------------------------------------------------------------------------------

  double AgeAt(int64_t t) const { return static_cast<double>(t - birth_) / kYear; }
  double AgeNow() const { return AgeAt(now_); }
  // An office slot, 08:00-16:30 US Eastern (13:00-21:30 UTC), on the day of `t`; a weekend day
  // moves forward to a weekday of the next week, each equally likely.
  int64_t OfficeSlot(int64_t t) {
    int64_t day = StartOfDay(t);
    int64_t weekday = ((day / kDay) % 7 + 7 + 4) % 7;  // 1970-01-01 was a Thursday; 0 = Sunday
    if (weekday == 0 || weekday == 6) day += ((rng_.Int(1, 5) - weekday + 7) % 7) * kDay;
    return day + 13 * kHour + rng_.Int(0, 34) * 15 * kMinute;
  }
  int64_t AnyTime(int64_t t) { return StartOfDay(t) + rng_.Int(0, 24 * 60 - 1) * kMinute; }

  // ---- Demographics ----------------------------------------------------------------------------

  void Demographics() {
    female_ = rng_.Chance(0.51);
    size_t band = rng_.Weighted(AgeBandWeights());
    double age = static_cast<double>(band) * 5 + rng_.Uniform(0, 5);
    if (age > 94.99) age = 94.99;
    birth_ = StartOfDay(now_ - Years(age));
    int64_t start = now_ - Years(options_.years_of_history);
    window_start_ = std::max(birth_, start);

    std::span<const Origin> origins = Origins();
    std::vector<double> weights;
    for (const Origin& o : origins) weights.push_back(o.weight);
    origin_ = &origins[rng_.Weighted(weights)];
    given_.push_back(std::string(rng_.Pick(female_ ? origin_->female : origin_->male)));
    if (AgeNow() >= 1 && rng_.Chance(0.45)) {
      std::string middle(rng_.Pick(female_ ? origin_->female : origin_->male));
      if (middle != given_[0]) given_.push_back(middle);
    }
    family_ = std::string(rng_.Pick(origin_->family));

    race_ = origin_->race;
    if (origin_->hispanic) {
      double r = rng_.Uniform();
      race_ = r < 0.85 ? kRaceWhite : r < 0.93 ? kRaceBlack : kRaceNative;
    }
    if (rng_.Chance(0.03)) {  // two races
      const Code candidates[] = {kRaceWhite, kRaceBlack, kRaceAsian, kRaceNative};
      const Code& other = rng_.Pick(std::span<const Code>(candidates));
      if (other.code != race_.code) second_race_ = other;
    }
    if (!origin_->language.system.empty() && rng_.Chance(origin_->language_preference)) {
      language_ = origin_->language;
    }

    const Town& town = rng_.Pick(Towns());
    town_ = &town;
    // One draw per statement: the order in which function arguments and operands are evaluated
    // is unspecified, and compilers differ.
    int64_t number = rng_.Int(1, 999);
    street_ = std::to_string(number) + " " + std::string(rng_.Pick(Streets()));
    if (rng_.Chance(0.25)) {
      int64_t floor = rng_.Int(1, 40);
      char unit = static_cast<char>('A' + rng_.Int(0, 3));
      apartment_ = "Apt " + std::to_string(floor) + unit;
    }
    char phone[32];
    std::snprintf(phone, sizeof phone, "%s-555-01%02d", std::string(town.area_code).c_str(),
                  static_cast<int>(rng_.Int(0, 99)));
    home_phone_ = phone;
    std::snprintf(phone, sizeof phone, "%s-555-01%02d", std::string(town.area_code).c_str(),
                  static_cast<int>(rng_.Int(0, 99)));
    mobile_phone_ = phone;
    email_ = AsciiLetters(given_[0]) + "." + AsciiLetters(family_) +
             std::to_string(rng_.Int(1, 99)) + "@example.com";

    char text[48];
    std::snprintf(text, sizeof text, "%06llu%07lld",
                  static_cast<unsigned long long>(Mix(options_.seed, 0x6d726eull) % 1000000),
                  static_cast<long long>(index_));
    mrn_ = text;
    int group = static_cast<int>(rng_.Int(10, 99));
    int serial = static_cast<int>(rng_.Int(1, 9999));
    std::snprintf(text, sizeof text, "999-%02d-%04d", group, serial);
    ssn_ = text;

    double a = AgeNow();
    double r = rng_.Uniform();
    if (a < 18) {
      marital_ = "";
    } else if (a < 30) {
      marital_ = r < 0.68 ? "S" : r < 0.97 ? "M" : "D";
    } else if (a < 50) {
      marital_ = r < 0.22 ? "S" : r < 0.82 ? "M" : r < 0.98 ? "D" : "W";
    } else if (a < 70) {
      marital_ = r < 0.10 ? "S" : r < 0.70 ? "M" : r < 0.90 ? "D" : "W";
    } else {
      marital_ = r < 0.05 ? "S" : r < 0.50 ? "M" : r < 0.62 ? "D" : "W";
    }
    if (female_ && marital_ != "" && marital_ != "S" && rng_.Chance(0.5)) {
      maiden_name_ = std::string(rng_.Pick(origin_->family));
      if (maiden_name_ == family_) maiden_name_.clear();
    }
    patient_urn_ = Urn();
  }

  std::string Urn() { return "urn:uuid:" + uuids_.Next(); }

  // ---- Traits and physiology --------------------------------------------------------------------

  void Traits() {
    z_height_ = rng_.Normal();
    z_bmi_ = rng_.Normal();
    z_bp_ = rng_.Normal();
    z_hr_ = rng_.Normal();
    z_lipid_ = rng_.Normal();
    z_hdl_ = rng_.Normal();
    z_tg_ = rng_.Normal();
    z_glucose_ = rng_.Normal();
    z_creatinine_ = rng_.Normal();
    z_hemoglobin_ = rng_.Normal();
    int years = static_cast<int>(AgeNow()) + 1;
    bmi_trend_.emplace(rng_, years, 0.5, 0.85);
    bp_trend_.emplace(rng_, years, 2.5, 0.8);
    a1c_trend_.emplace(rng_, years, 0.06, 0.85);
    ldl_trend_.emplace(rng_, years, 5.0, 0.85);
    if (AgeNow() >= 16) {
      double r = rng_.Uniform();
      smoking_ = r < 0.66 ? Smoking::kNever : r < 0.86 ? Smoking::kFormer : Smoking::kCurrent;
      smoking_start_ = birth_ + Years(rng_.Uniform(15, 22));
      if (smoking_ == Smoking::kFormer) {
        smoking_quit_ = smoking_start_ + Years(rng_.Uniform(2, std::max(2.5, AgeNow() - 17)));
        if (smoking_quit_ >= now_) smoking_quit_ = now_ - Years(0.5);
      }
    }
  }

  bool Smoker(int64_t t) const {
    if (smoking_ == Smoking::kCurrent) return t >= smoking_start_;
    if (smoking_ == Smoking::kFormer) return t >= smoking_start_ && t < smoking_quit_;
    return false;
  }
  bool EverSmoked() const { return smoking_ == Smoking::kCurrent || smoking_ == Smoking::kFormer; }

  const ConditionRec* ChronicRec(Chronic c) const {
    int i = chronic_[static_cast<size_t>(c)];
    return i < 0 ? nullptr : &conditions_[static_cast<size_t>(i)];
  }
  // The disease process is under way at `t` (diagnosed or not).
  bool Latent(Chronic c, int64_t t) const {
    const ConditionRec* r = ChronicRec(c);
    return r && r->latent != kNever && r->latent <= t &&
           (r->abatement == kNever || t < r->abatement);
  }
  // Diagnosed and active at `t`.
  bool Known(const ConditionRec& r, int64_t t) const {
    return r.recorded && r.onset <= t && (r.abatement == kNever || t < r.abatement);
  }

  double HeightAt(int64_t t) const {
    return MedianHeight(female_, AgeAt(t)) * (1 + 0.04 * z_height_);
  }
  double BmiAt(int64_t t) const {
    double age = AgeAt(t);
    double bmi = age < 18
                     ? MedianBmi(female_, age) * (1 + 0.10 * z_bmi_) + 0.4 * bmi_trend_->At(age)
                     : MedianBmi(female_, age) * (1 + 0.13 * z_bmi_) + bmi_trend_->At(age);
    return std::clamp(bmi, 11.0, 62.0);
  }
  bool Obese(int64_t t) const { return AgeAt(t) >= 18 && BmiAt(t) >= 30; }

  double SystolicAt(int64_t t) const {
    double age = AgeAt(t);
    double sys = age < 18 ? 94 + 1.2 * (age - 3) : 110 + 0.55 * std::max(0.0, age - 25);
    sys += 6 * z_bp_ + bp_trend_->At(age);
    if (const ConditionRec* h = ChronicRec(Chronic::kHypertension); h && h->latent != kNever) {
      sys += (20 + 3 * z_bp_) * Ramp(t, h->latent - Years(2), h->latent);
      sys -= 12 * Ramp(t, h->treated, h->treated + 90 * kDay);
      sys -= 6 * Ramp(t, h->second_line, h->second_line + 90 * kDay);
    }
    if (Latent(Chronic::kDiabetes, t)) sys += 3;
    if (Obese(t)) sys += 4;
    return sys;
  }
  double DiastolicFor(double systolic, double age) const {
    return 0.55 * systolic + (age < 12 ? 10 : 14) - 0.15 * std::max(0.0, age - 60);
  }

  double A1cAt(int64_t t) const {
    double age = AgeAt(t);
    double a1c = 5.0 + 0.006 * std::max(0.0, age - 20) + 0.15 * z_glucose_ + a1c_trend_->At(age);
    if (const ConditionRec* p = ChronicRec(Chronic::kPrediabetes); p && p->latent != kNever) {
      a1c += 0.8 * Ramp(t, p->latent - Years(1), p->latent);
    }
    if (const ConditionRec* d = ChronicRec(Chronic::kDiabetes); d && d->latent != kNever) {
      a1c += 1.9 * Ramp(t, d->latent - Years(1), d->latent);
      if (t > d->latent) a1c += 0.05 * static_cast<double>(t - d->latent) / kYear;
      a1c -= 1.0 * Ramp(t, d->treated, d->treated + 180 * kDay);
      a1c -= 0.7 * Ramp(t, d->second_line, d->second_line + 180 * kDay);
    }
    return std::clamp(a1c, 4.2, 13.5);
  }

  double LdlAt(int64_t t) const {
    double age = AgeAt(t);
    if (age < 18) return 90 + 12 * z_lipid_;
    double ldl = 95 + 0.9 * std::min(40.0, age - 18) + 18 * z_lipid_ + ldl_trend_->At(age);
    if (const ConditionRec* h = ChronicRec(Chronic::kHyperlipidemia); h && h->latent != kNever) {
      ldl += 55 * Ramp(t, h->latent - Years(2), h->latent);
      ldl *= 1 - 0.33 * Ramp(t, h->treated, h->treated + 120 * kDay);
    }
    return std::max(45.0, ldl);
  }
  bool OnStatin(int64_t t) const {
    const ConditionRec* h = ChronicRec(Chronic::kHyperlipidemia);
    return h && h->treated != kNever && t >= h->treated;
  }
  double HdlAt(int64_t t) const {
    double hdl = (female_ ? 58 : 47) + 7 * z_hdl_;
    if (Obese(t)) hdl -= 5;
    if (Latent(Chronic::kDiabetes, t)) hdl -= 4;
    if (Smoker(t)) hdl -= 4;
    return std::max(25.0, hdl);
  }
  double TriglyceridesAt(int64_t t) const {
    double tg = 100 + 30 * z_tg_;
    if (Obese(t)) tg += 40;
    if (Latent(Chronic::kDiabetes, t)) tg += 50;
    if (Latent(Chronic::kHyperlipidemia, t)) tg += 40;
    if (OnStatin(t)) tg *= 0.85;
    return std::max(35.0, tg);
  }

  // ---- Conditions -------------------------------------------------------------------------------

  // Samples the age at which a chronic condition starts from its cumulative incidence curve,
  // scaled by `risk`; -1 when it has not started by now.
  double SampleOnsetAge(const ChronicDef& def, double risk) {
    double u = rng_.Uniform() / risk;
    std::span<const CurvePoint> curve = def.incidence;
    double now_age = AgeNow();
    for (size_t i = 1; i < curve.size(); ++i) {
      if (u < curve[i].y) {
        const CurvePoint& a = curve[i - 1];
        const CurvePoint& b = curve[i];
        double age = a.x + (b.x - a.x) * (u - a.y) / (b.y - a.y);
        return age <= now_age ? age : -1;
      }
    }
    return -1;
  }

  int AddChronic(Chronic c, int64_t latent) {
    ConditionRec r;
    r.code = ChronicInfo(c).code;
    r.chronic = true;
    r.kind = c;
    r.latent = latent;
    r.urn = Urn();
    conditions_.push_back(std::move(r));
    int i = static_cast<int>(conditions_.size()) - 1;
    chronic_[static_cast<size_t>(c)] = i;
    return i;
  }

  void ChronicConditions() {
    chronic_.fill(-1);
    bool obese_adult = AgeNow() >= 18 && z_bmi_ > 0.6;
    auto risk_of = [&](Chronic c) {
      const ChronicDef& def = ChronicInfo(c);
      double risk = female_ ? def.female_risk : 1.0;
      switch (c) {
        case Chronic::kHypertension:
          if (obese_adult) risk *= 1.5;
          if (race_.code == kRaceBlack.code) risk *= 1.3;
          break;
        case Chronic::kDiabetes:
          if (obese_adult) risk *= 2.2;
          break;
        case Chronic::kPrediabetes:
          if (obese_adult) risk *= 1.8;
          break;
        case Chronic::kHyperlipidemia:
        case Chronic::kOsteoarthritis:
          if (obese_adult) risk *= 1.4;
          break;
        case Chronic::kCopd:
          risk *= EverSmoked() ? 4.0 : 0.4;
          break;
        case Chronic::kCoronaryDisease:
          if (EverSmoked()) risk *= 1.6;
          if (chronic_[static_cast<size_t>(Chronic::kHypertension)] >= 0) risk *= 1.5;
          if (chronic_[static_cast<size_t>(Chronic::kDiabetes)] >= 0) risk *= 1.5;
          break;
        default:
          break;
      }
      return risk;
    };
    const Chronic kOrder[] = {Chronic::kHypertension,
                              Chronic::kDiabetes,
                              Chronic::kHyperlipidemia,
                              Chronic::kAsthma,
                              Chronic::kCopd,
                              Chronic::kCoronaryDisease,
                              Chronic::kAtrialFibrillation,
                              Chronic::kDepression,
                              Chronic::kAnxiety,
                              Chronic::kOsteoarthritis,
                              Chronic::kBackPain,
                              Chronic::kAllergicRhinitis,
                              Chronic::kHypothyroidism};
    for (Chronic c : kOrder) {
      double age = SampleOnsetAge(ChronicInfo(c), risk_of(c));
      if (age >= 0) AddChronic(c, birth_ + Years(age));
    }
    // Prediabetes precedes diabetes (and is closed by it), or comes on its own.
    if (const ConditionRec* d = ChronicRec(Chronic::kDiabetes)) {
      int64_t diabetes_latent = d->latent;
      int64_t start = diabetes_latent - Years(rng_.Uniform(2, 6));
      if (AgeAt(start) >= 18) {
        int i = AddChronic(Chronic::kPrediabetes, start);
        conditions_[static_cast<size_t>(i)].abatement = diabetes_latent;
      }
    } else {
      double age =
          SampleOnsetAge(ChronicInfo(Chronic::kPrediabetes), risk_of(Chronic::kPrediabetes));
      if (age >= 0) AddChronic(Chronic::kPrediabetes, birth_ + Years(age));
    }
    // Obesity: the first month of adult life with a BMI of 30 or more.
    for (int64_t t = birth_ + Years(18); t < now_; t += kMonth) {
      if (BmiAt(t) >= 30) {
        AddChronic(Chronic::kObesity, t);
        break;
      }
    }
    // Remissions.
    for (ConditionRec& r : conditions_) {
      const ChronicDef& def = ChronicInfo(r.kind);
      if (r.abatement == kNever && def.remission_probability > 0 &&
          rng_.Chance(def.remission_probability)) {
        int64_t end = r.latent + Years(rng_.Uniform(1, 6));
        if (end < now_) r.abatement = end;
      }
    }
  }

  void Coverages() {
    double start_age = AgeAt(window_start_);
    int64_t medicare_from = birth_ + Years(65);
    if (start_age >= 65) {
      AddCoverage(dir_.Medicare(), medicare_from, kNever, false);
      return;
    }
    bool child = start_age < 18;
    int payer = rng_.Chance(child ? 0.42 : 0.2) ? dir_.Medicaid() : dir_.PrivatePlan(rng_);
    int64_t start = std::max(birth_, window_start_ - Years(rng_.Uniform(0, 5)));
    bool to_medicare = medicare_from < now_;
    AddCoverage(payer, StartOfDay(start), to_medicare ? medicare_from - kDay : kNever,
                child && payer != dir_.Medicaid());
    if (to_medicare) AddCoverage(dir_.Medicare(), medicare_from, kNever, false);
  }

  void AddCoverage(int payer, int64_t start, int64_t end, bool child) {
    CoverageRec c{payer, start, end, child, {}, Urn()};
    // Medicare: an MBI-shaped "1EG4-TE5-MK73"; others: three letters and nine digits. Drawn one
    // character at a time, in order.
    std::string_view shape = payer == dir_.Medicare() ? "9AA9-AA9-AA99" : "AAA999999999";
    for (size_t i = 0; i < shape.size(); ++i) {
      char ch = shape[i];
      if (ch == 'A') {
        ch = static_cast<char>('A' + rng_.Int(0, 25));
      } else if (ch == '9') {
        ch = static_cast<char>('0' + rng_.Int(i == 0 ? 1 : 0, 9));
      }
      c.subscriber_id += ch;
    }
    coverages_.push_back(std::move(c));
  }

  // ---- Encounters -------------------------------------------------------------------------------

  // Adds an encounter if it fits in the window; its index or -1.
  int AddEncounter(Kind kind, int64_t start, int64_t end, int reason) {
    if (start < window_start_ || end >= now_) return -1;
    EncounterRec e;
    e.kind = kind;
    e.start = start;
    e.end = end;
    e.reason = reason;
    e.sequence = static_cast<int>(encounters_.size());
    encounters_.push_back(std::move(e));
    return static_cast<int>(encounters_.size()) - 1;
  }

  void ScheduleWellness() {
    static constexpr int kChildDays[] = {4, 30, 61, 122, 183, 274, 365, 457, 548, 730, 913};
    for (int d : kChildDays) {
      int64_t day = birth_ + Days(d + (d < 10 ? rng_.Int(0, 2) : rng_.Int(0, 6)));
      int64_t start = OfficeSlot(day);
      AddEncounter(Kind::kWellness, start, start + rng_.Int(20, 35) * kMinute, -1);
    }
    for (int y = 3; y < 95; ++y) {
      if (birth_ + Years(y) > now_) break;
      double p = y < 18 ? 0.88 : y < 40 ? 0.55 : y < 65 ? 0.72 : 0.88;
      int64_t day = birth_ + Years(y) + Days(static_cast<double>(rng_.Int(-45, 75)));
      int64_t start = OfficeSlot(day);
      int64_t end = start + rng_.Int(20, 40) * kMinute;
      if (rng_.Chance(p)) AddEncounter(Kind::kWellness, start, end, -1);
    }
  }

  // Conditions found from labs or measurements are diagnosed at the first check-up after they
  // start; those that started before the window were diagnosed before it.
  void DiagnoseAtCheckups() {
    for (size_t i = 0; i < conditions_.size(); ++i) {
      ConditionRec& r = conditions_[i];
      const ChronicDef& def = ChronicInfo(r.kind);
      if (!def.found_at_checkup) continue;
      if (r.latent < window_start_) {
        r.recorded = true;
        r.onset = r.latent;
        r.treated = r.latent + Days(static_cast<double>(rng_.Int(30, 180)));
      } else {
        int found = -1;
        for (size_t e = 0; e < encounters_.size(); ++e) {
          const EncounterRec& enc = encounters_[e];
          if (enc.kind == Kind::kWellness && enc.start >= r.latent &&
              (found < 0 || enc.start < encounters_[static_cast<size_t>(found)].start)) {
            found = static_cast<int>(e);
          }
        }
        if (found < 0) continue;  // not diagnosed yet
        EncounterRec& enc = encounters_[static_cast<size_t>(found)];
        if (r.abatement != kNever && r.abatement <= enc.start) continue;  // gone unnoticed
        r.recorded = true;
        r.onset = enc.start;
        r.treated = enc.start;
        enc.diagnoses.push_back(static_cast<int>(i));
      }
      PlanSecondLine(r);
    }
  }

  void PlanSecondLine(ConditionRec& r) {
    const ChronicDef& def = ChronicInfo(r.kind);
    if (def.first_line == nullptr || def.second_line == nullptr) return;
    if (rng_.Chance(def.second_line_probability)) {
      int64_t at = r.treated + Years(rng_.Uniform(1, 4));
      if (at < now_) r.second_line = at;
    }
  }

  void ScheduleProblemVisits() {
    size_t n = conditions_.size();
    for (size_t i = 0; i < n; ++i) {
      ConditionRec& r = conditions_[i];
      if (!r.chronic || ChronicInfo(r.kind).found_at_checkup) continue;
      if (r.latent < window_start_) {
        r.recorded = true;
        r.onset = r.latent;
        r.treated = r.latent + Days(static_cast<double>(rng_.Int(7, 60)));
      } else {
        int64_t start = OfficeSlot(r.latent + Days(static_cast<double>(rng_.Int(2, 14))));
        int e = AddEncounter(Kind::kProblem, start, start + rng_.Int(20, 40) * kMinute,
                             static_cast<int>(i));
        if (e < 0) continue;
        r.recorded = true;
        r.onset = r.latent;
        r.treated = start;
        encounters_[static_cast<size_t>(e)].diagnoses.push_back(static_cast<int>(i));
      }
      PlanSecondLine(r);
    }
  }

  int ActiveCount(int64_t t, std::initializer_list<Chronic> kinds) const {
    int n = 0;
    for (Chronic c : kinds) {
      const ConditionRec* r = ChronicRec(c);
      if (r && Known(*r, t)) ++n;
    }
    return n;
  }

  void ScheduleAdmissions() {
    std::span<const AdmissionDef> defs = Admissions();
    for (int64_t month = window_start_; month < now_; month += kMonth) {
      int64_t t = month + Days(rng_.Uniform(0, 30));
      double age = AgeAt(t);
      double rate = 0.012 + (age >= 65 ? 0.03 : 0) +
                    0.02 * ActiveCount(t, {Chronic::kCoronaryDisease, Chronic::kCopd,
                                           Chronic::kAtrialFibrillation, Chronic::kDiabetes});
      if (!rng_.Chance(rate / 12)) continue;
      std::vector<double> weights;
      for (const AdmissionDef& d : defs) {
        bool fits = age >= d.min_age && age <= d.max_age;
        weights.push_back(fits ? d.weight * (age >= 65 ? d.elderly_factor : 1.0) : 0.0);
      }
      if (std::all_of(weights.begin(), weights.end(), [](double w) { return w == 0; })) continue;
      const AdmissionDef& def = defs[rng_.Weighted(weights)];
      int64_t start = AnyTime(t);
      int64_t end =
          OfficeSlot(start + Days(static_cast<double>(rng_.Int(def.stay_lo, def.stay_hi))));
      ConditionRec r;
      r.code = def.code;
      r.admission = &def;
      r.onset = std::max(birth_, start - rng_.Int(2, 48) * kHour);
      r.latent = r.onset;
      r.recorded = true;
      if (start + Days(def.recovery_days) < now_) r.abatement = start + Days(def.recovery_days);
      r.urn = Urn();
      int e = AddEncounter(Kind::kInpatient, start, end, static_cast<int>(conditions_.size()));
      if (e < 0) continue;
      conditions_.push_back(std::move(r));
      EncounterRec& enc = encounters_[static_cast<size_t>(e)];
      enc.diagnoses.push_back(static_cast<int>(conditions_.size()) - 1);
      if (def.leads_to_coronary_disease) {
        int cad = chronic_[static_cast<size_t>(Chronic::kCoronaryDisease)];
        if (cad >= 0 && conditions_[static_cast<size_t>(cad)].recorded &&
            conditions_[static_cast<size_t>(cad)].onset <= start) {
          continue;  // known already
        }
        if (cad < 0) {
          cad = AddChronic(Chronic::kCoronaryDisease, start);
        } else {
          // Known only from now on (remove it from any later diagnosing encounter).
          for (EncounterRec& other : encounters_) {
            auto& d = other.diagnoses;
            d.erase(std::remove(d.begin(), d.end(), cad), d.end());
          }
        }
        ConditionRec& c = conditions_[static_cast<size_t>(cad)];
        c.latent = std::min(c.latent, start);
        c.onset = start;
        c.recorded = true;
        c.treated = end;
        c.second_line = kNever;
        PlanSecondLine(c);
        encounters_[static_cast<size_t>(e)].diagnoses.push_back(cad);
      }
    }
  }

  void ScheduleAcute() {
    std::span<const AcuteDef> defs = AcuteConditions();
    for (int64_t month = window_start_; month < now_; month += kMonth) {
      int64_t t = month + Days(rng_.Uniform(0, 30));
      double age = AgeAt(t);
      double rate = age < 2 ? 2.0 : age < 6 ? 1.4 : age < 18 ? 0.8 : age < 65 ? 0.55 : 0.7;
      if (!rng_.Chance(rate / 12)) continue;
      std::vector<double> weights;
      for (const AcuteDef& d : defs) {
        bool fits = age >= d.min_age && age <= d.max_age;
        weights.push_back(fits ? d.weight * (female_ ? d.female_risk : 1.0) : 0.0);
      }
      const AcuteDef& def = defs[rng_.Weighted(weights)];
      bool emergency = rng_.Chance(def.emergency_probability);
      int64_t start = emergency ? AnyTime(t) : OfficeSlot(t);
      int64_t end = start + (emergency ? rng_.Int(90, 360) : rng_.Int(15, 30)) * kMinute;
      ConditionRec r;
      r.code = def.code;
      r.acute = &def;
      bool injury = def.fever_probability == 0;
      r.onset = std::max(birth_, start - (injury ? rng_.Int(1, 5) * kHour : rng_.Int(1, 5) * kDay));
      r.latent = r.onset;
      r.recorded = true;
      int64_t abatement = r.onset + Days(static_cast<double>(rng_.Int(def.days_lo, def.days_hi)));
      if (abatement < now_) r.abatement = abatement;
      r.urn = Urn();
      int e = AddEncounter(emergency ? Kind::kEmergency : Kind::kAcute, start, end,
                           static_cast<int>(conditions_.size()));
      if (e < 0) continue;
      conditions_.push_back(std::move(r));
      EncounterRec& enc = encounters_[static_cast<size_t>(e)];
      enc.diagnoses.push_back(static_cast<int>(conditions_.size()) - 1);
      enc.fever = rng_.Chance(def.fever_probability);
    }
  }

  // Emergency visits for flares of known chronic conditions.
  void ScheduleExacerbations() {
    struct Flare {
      Chronic kind;
      double per_year;
    };
    static constexpr Flare kFlares[] = {{Chronic::kAsthma, 0.15},
                                        {Chronic::kCopd, 0.25},
                                        {Chronic::kAtrialFibrillation, 0.08},
                                        {Chronic::kCoronaryDisease, 0.05}};
    for (int64_t month = window_start_; month < now_; month += kMonth) {
      int64_t t = month + Days(rng_.Uniform(0, 30));
      for (const Flare& f : kFlares) {
        const ConditionRec* r = ChronicRec(f.kind);
        if (!r || !Known(*r, t) || !rng_.Chance(f.per_year / 12)) continue;
        int64_t start = AnyTime(t);
        AddEncounter(Kind::kEmergency, start, start + rng_.Int(120, 480) * kMinute,
                     chronic_[static_cast<size_t>(f.kind)]);
      }
    }
  }

  void ScheduleFollowUps() {
    for (int64_t month = window_start_; month < now_; month += kMonth) {
      int64_t t = month + Days(rng_.Uniform(0, 30));
      std::vector<double> weights;
      double rate = 0;
      for (const ConditionRec& r : conditions_) {
        double w = r.chronic && Known(r, t) ? ChronicInfo(r.kind).follow_ups_per_year : 0;
        weights.push_back(w);
        rate += w;
      }
      if (rate <= 0 || !rng_.Chance(std::min(rate, 3.0) / 12)) continue;
      int reason = static_cast<int>(rng_.Weighted(weights));
      int64_t start = OfficeSlot(t);
      AddEncounter(Kind::kFollowUp, start, start + rng_.Int(15, 30) * kMinute, reason);
    }
  }

  void SortEncounters() {
    std::stable_sort(encounters_.begin(), encounters_.end(),
                     [](const EncounterRec& a, const EncounterRec& b) {
                       return a.start != b.start ? a.start < b.start : a.sequence < b.sequence;
                     });
    for (size_t e = 0; e < encounters_.size(); ++e) {
      encounters_[e].urn = Urn();
      for (int c : encounters_[e].diagnoses) {
        conditions_[static_cast<size_t>(c)].encounter = static_cast<int>(e);
      }
    }
  }

  void AssignCareProviders() {
    hospital_ = dir_.HospitalFor(town_->state);
    adult_clinic_ = dir_.ClinicFor(town_->state, rng_);
    adult_gp_ = dir_.PractitionerAt(adult_clinic_, Specialty::kFamily, rng_);
    bool pediatric = rng_.Chance(0.6);
    child_clinic_ = pediatric ? dir_.PediatricClinic() : adult_clinic_;
    child_gp_ =
        pediatric ? dir_.PractitionerAt(child_clinic_, Specialty::kPediatrics, rng_) : adult_gp_;
    for (EncounterRec& e : encounters_) {
      bool child = AgeAt(e.start) < 18;
      switch (e.kind) {
        case Kind::kEmergency:
          e.organization = hospital_;
          e.practitioner = dir_.PractitionerAt(hospital_, Specialty::kEmergency, rng_);
          break;
        case Kind::kInpatient: {
          e.organization = hospital_;
          const ConditionRec& r = conditions_[static_cast<size_t>(e.reason)];
          bool cardiac = r.admission && r.admission->leads_to_coronary_disease;
          e.practitioner = dir_.PractitionerAt(
              hospital_, cardiac ? Specialty::kCardiology : Specialty::kInternal, rng_);
          break;
        }
        default:
          e.organization = child ? child_clinic_ : adult_clinic_;
          e.practitioner = child ? child_gp_ : adult_gp_;
          break;
      }
    }
  }

  bool Ambulatory(const EncounterRec& e) const {
    return e.kind != Kind::kEmergency && e.kind != Kind::kInpatient;
  }

  void PlaceAllergies() {
    int count = rng_.Chance(0.22) ? (rng_.Chance(0.3) ? 2 : 1) : 0;
    std::span<const AllergyDef> defs = Allergies();
    std::vector<double> weights;
    for (const AllergyDef& d : defs) weights.push_back(d.weight);
    for (int i = 0; i < count; ++i) {
      const AllergyDef& def = defs[rng_.Weighted(weights)];
      bool duplicate = false;
      for (const AllergyRec& a : allergies_) duplicate |= a.def == &def;
      double onset_age = rng_.Uniform(def.onset_age_lo, def.onset_age_hi + 1);
      if (duplicate || onset_age > AgeNow()) continue;
      AllergyRec a{&def, birth_ + Years(onset_age), -1, {}};
      for (size_t e = 0; e < encounters_.size(); ++e) {
        if (Ambulatory(encounters_[e]) && encounters_[e].start >= a.onset) {
          a.encounter = static_cast<int>(e);
          break;
        }
      }
      if (a.encounter < 0) continue;
      a.urn = Urn();
      allergies_.push_back(std::move(a));
      encounters_[static_cast<size_t>(allergies_.back().encounter)].allergies.push_back(
          static_cast<int>(allergies_.size()) - 1);
    }
  }

  static bool HasVaccine(const EncounterRec& e, const Code& vaccine) {
    for (const Code& v : e.vaccines)
      if (v.code == vaccine.code) return true;
    return false;
  }

  void PlaceImmunizations() {
    // Childhood schedule: at the first well visit from the due age (catch-up within two years).
    int64_t last_tdap = kNever;
    for (const ScheduledDose& dose : ChildhoodSchedule()) {
      int64_t due = birth_ + Days(dose.age_days - 14);
      int64_t late = birth_ + Days(dose.age_days + 730);
      for (EncounterRec& e : encounters_) {
        if (e.kind != Kind::kWellness || e.start < due || e.start > late) continue;
        if (HasVaccine(e, dose.vaccine)) continue;
        e.vaccines.push_back(dose.vaccine);
        if (dose.vaccine.code == "115") last_tdap = e.start;
        break;
      }
    }
    // Adults and seasonal.
    int64_t td_due =
        last_tdap != kNever ? last_tdap + Years(10) : birth_ + Years(19 + rng_.Uniform(0, 10));
    bool zoster = false, ppsv23 = false, pcv13 = false;
    int flu_season_done = -1;
    for (EncounterRec& e : encounters_) {
      double age = AgeAt(e.start);
      if (!Ambulatory(e)) continue;
      int month = MonthOf(e.start);
      int season = month >= 8 ? YearOf(e.start) : YearOf(e.start) - 1;
      if ((month >= 9 || month <= 1) && age >= 0.5 && season != flu_season_done) {
        flu_season_done = season;
        double p = age < 18 ? 0.55 : age < 65 ? 0.45 : 0.7;
        if (rng_.Chance(p)) e.vaccines.push_back(kFluVaccine);
      }
      if (e.kind != Kind::kWellness || age < 19) continue;
      if (e.start >= td_due && rng_.Chance(0.7)) {
        e.vaccines.push_back(kTdVaccine);
        td_due = e.start + Years(10);
      }
      if (age >= 60 && !zoster && rng_.Chance(0.4)) {
        e.vaccines.push_back(kZosterVaccine);
        zoster = true;
      }
      if (age >= 65 && !ppsv23 && rng_.Chance(0.6)) {
        e.vaccines.push_back(kPpsv23Vaccine);
        ppsv23 = true;
      } else if (age >= 65 && !pcv13 && rng_.Chance(0.5)) {
        e.vaccines.push_back(kPcv13Vaccine);
        pcv13 = true;
      }
    }
  }

  // Orders a medication at encounter `e`; chains keep every order of one (condition, medication).
  void Order(int e, const MedDef* med, int condition, int allergy) {
    EncounterRec& enc = encounters_[static_cast<size_t>(e)];
    for (const MedOrder& o : enc.orders)
      if (o.med == med) return;
    enc.orders.push_back({med, condition, allergy, "", Urn()});
    chains_[{condition, allergy, med}].push_back({e, static_cast<int>(enc.orders.size()) - 1});
  }

  void PlaceMedications() {
    std::map<std::pair<int, const MedDef*>, int64_t> last;  // (condition, med) -> last order
    for (size_t ei = 0; ei < encounters_.size(); ++ei) {
      int e = static_cast<int>(ei);
      int64_t t = encounters_[ei].start;
      double age = AgeAt(t);
      // What was diagnosed here.
      std::vector<int> diagnoses = encounters_[ei].diagnoses;
      for (int c : diagnoses) {
        const ConditionRec& r = conditions_[static_cast<size_t>(c)];
        if (r.acute) {
          const MedDef* med =
              age < 12 && r.acute->child_med ? r.acute->child_med : r.acute->adult_med;
          if (med && rng_.Chance(r.acute->med_probability)) Order(e, med, c, -1);
        } else if (r.admission) {
          if (r.admission->med) Order(e, r.admission->med, c, -1);
        }
      }
      for (int a : encounters_[ei].allergies) {
        if (allergies_[static_cast<size_t>(a)].def->needs_epinephrine)
          Order(e, &kEpinephrine, -1, a);
      }
      // Chronic treatment: started at diagnosis, renewed about yearly at office visits.
      Kind kind = encounters_[ei].kind;
      bool office = kind == Kind::kWellness || kind == Kind::kFollowUp || kind == Kind::kProblem;
      for (size_t ci = 0; ci < conditions_.size(); ++ci) {
        const ConditionRec& r = conditions_[ci];
        if (!r.chronic || !r.recorded || r.treated == kNever || t < r.treated) continue;
        if (r.abatement != kNever && t >= r.abatement) continue;
        const ChronicDef& def = ChronicInfo(r.kind);
        const MedDef* first = def.first_line;
        if (r.kind == Chronic::kAllergicRhinitis && age < 12) first = &kLoratadine;
        for (const MedDef* med : {first, r.second_line != kNever && t >= r.second_line
                                             ? def.second_line
                                             : static_cast<const MedDef*>(nullptr)}) {
          if (med == nullptr) continue;
          auto key = std::make_pair(static_cast<int>(ci), med);
          auto it = last.find(key);
          bool due = it == last.end() ? office || r.encounter == e
                                      : office && t - it->second >= 330 * kDay;
          if (due) {
            Order(e, med, static_cast<int>(ci), -1);
            last[key] = t;
          }
        }
      }
    }
    // Statuses: every order but the last of a chain is completed; the last is active while the
    // reason lasts and the prescription is recent.
    for (auto& [key, chain] : chains_) {
      for (size_t i = 0; i < chain.size(); ++i) {
        auto [e, o] = chain[i];
        EncounterRec& enc = encounters_[static_cast<size_t>(e)];
        MedOrder& order = enc.orders[static_cast<size_t>(o)];
        if (i + 1 < chain.size()) {
          order.status = "completed";
          continue;
        }
        int64_t age = now_ - enc.start;
        const ConditionRec* r =
            order.condition >= 0 ? &conditions_[static_cast<size_t>(order.condition)] : nullptr;
        if (r && r->chronic) {
          order.status = r->abatement != kNever ? "stopped"
                         : age <= 400 * kDay    ? "active"
                                                : "completed";
        } else if (r) {
          order.status = age <= 30 * kDay ? "active" : "completed";
        } else {
          order.status = age <= 365 * kDay ? "active" : "completed";
        }
      }
    }
  }

  // ---- Rendering --------------------------------------------------------------------------------

  void AddEntry(std::string_view urn, std::string_view type, json::Value resource,
                std::string_view if_none_exist = {}) {
    Obj request;
    request.Add("method", "POST").Add("url", type);
    if (!if_none_exist.empty()) request.Add("ifNoneExist", if_none_exist);
    entries_.push_back(Obj()
                           .Add("fullUrl", urn)
                           .Add("resource", std::move(resource))
                           .Add("request", request.Build())
                           .Build());
  }

  json::Value PatientRef() const { return Ref(patient_urn_, given_[0] + " " + family_); }
  json::Value PractitionerRef(int p) const {
    return Ref(dir_.PractitionerRef(p), dir_.practitioners()[static_cast<size_t>(p)].display);
  }
  json::Value OrganizationRef(int o) const {
    return Ref(dir_.OrganizationRef(o), dir_.organizations()[static_cast<size_t>(o)].name);
  }

  json::Value Render() {
    RenderPatient();
    for (const CoverageRec& c : coverages_) RenderCoverage(c);
    // The problem list from before the window.
    for (size_t i = 0; i < conditions_.size(); ++i) {
      if (conditions_[i].recorded && conditions_[i].encounter < 0) RenderCondition(i);
    }
    for (size_t e = 0; e < encounters_.size(); ++e) RenderEncounter(e);
    return Obj()
        .Add("resourceType", "Bundle")
        .Add("type", "transaction")
        .Add("entry", json::Value(std::move(entries_)))
        .Build();
  }

  json::Value RaceExtension(std::string_view url, std::initializer_list<Code> categories,
                            std::string_view text) const {
    json::Array parts;
    for (const Code& c : categories) {
      parts.push_back(Obj().Add("url", "ombCategory").Add("valueCoding", Coding(c)).Build());
    }
    parts.push_back(Obj().Add("url", "text").Add("valueString", text).Build());
    return Obj().Add("url", url).Add("extension", json::Value(std::move(parts))).Build();
  }

  void RenderPatient() {
    json::Value race = second_race_.system.empty()
                           ? RaceExtension(kUsCoreRace, {race_}, race_.display)
                           : RaceExtension(kUsCoreRace, {race_, second_race_},
                                           std::string(race_.display) + " and " +
                                               std::string(second_race_.display));
    const Code& ethnicity = origin_->hispanic ? kHispanic : kNotHispanic;
    json::Value extensions =
        List(std::move(race), RaceExtension(kUsCoreEthnicity, {ethnicity}, ethnicity.display),
             Obj().Add("url", kUsCoreBirthSex).Add("valueCode", female_ ? "F" : "M").Build());

    json::Value identifiers =
        List(Obj()
                 .Add("use", "usual")
                 .Add("type", Concept({kIdentifierType, "MR", "Medical record number"}))
                 .Add("system", kMrnSystem)
                 .Add("value", mrn_)
                 .Build(),
             Obj()
                 .Add("use", "official")
                 .Add("type", Concept({kIdentifierType, "SS", "Social Security number"}))
                 .Add("system", kSsnSystem)
                 .Add("value", ssn_)
                 .Build());

    json::Array given;
    for (const std::string& g : given_) given.push_back(g);
    Obj official;
    official.Add("use", "official")
        .Add("family", family_)
        .Add("given", json::Value(std::move(given)));
    if (AgeNow() >= 18) {
      official.Add("prefix",
                   List(female_ ? (marital_ == "M" || marital_ == "W" ? "Mrs." : "Ms.") : "Mr."));
    }
    json::Value names = List(official.Build());
    if (!maiden_name_.empty()) {
      names.PushBack(Obj()
                         .Add("use", "maiden")
                         .Add("family", maiden_name_)
                         .Add("given", List(given_[0]))
                         .Build());
    }

    json::Value telecom =
        List(Obj().Add("system", "phone").Add("value", home_phone_).Add("use", "home").Build());
    if (AgeNow() >= 14) {
      telecom.PushBack(
          Obj().Add("system", "phone").Add("value", mobile_phone_).Add("use", "mobile").Build());
    }
    if (AgeNow() >= 16) {
      telecom.PushBack(
          Obj().Add("system", "email").Add("value", email_).Add("use", "home").Build());
    }

    json::Value line = List(street_);
    if (!apartment_.empty()) line.PushBack(apartment_);
    json::Value address = Obj()
                              .Add("use", "home")
                              .Add("type", "both")
                              .Add("line", std::move(line))
                              .Add("city", town_->city)
                              .Add("state", town_->state)
                              .Add("postalCode", town_->postal_code)
                              .Add("country", "US")
                              .Build();

    Obj patient;
    patient.Add("resourceType", "Patient")
        .Add("extension", std::move(extensions))
        .Add("identifier", std::move(identifiers))
        .Add("active", true)
        .Add("name", std::move(names))
        .Add("telecom", std::move(telecom))
        .Add("gender", female_ ? "female" : "male")
        .Add("birthDate", FormatDate(birth_))
        .Add("address", List(std::move(address)));
    if (!marital_.empty()) {
      static constexpr std::pair<std::string_view, std::string_view> kMarital[] = {
          {"S", "Never Married"}, {"M", "Married"}, {"D", "Divorced"}, {"W", "Widowed"}};
      for (const auto& [code, display] : kMarital) {
        if (code == marital_)
          patient.Add("maritalStatus", Concept({kMaritalStatus, code, display}));
      }
    }
    Code language = language_.system.empty() ? kEnglish : language_;
    patient.Add("communication",
                List(Obj().Add("language", Concept(language)).Add("preferred", true).Build()));
    bool child = AgeNow() < 18;
    patient.Add("generalPractitioner", List(PractitionerRef(child ? child_gp_ : adult_gp_)))
        .Add("managingOrganization", OrganizationRef(child ? child_clinic_ : adult_clinic_));
    AddEntry(patient_urn_, "Patient", patient.Build(),
             "identifier=" + std::string(kMrnSystem) + "|" + mrn_);
  }

  void RenderCoverage(const CoverageRec& c) {
    const Organization& payer = dir_.organizations()[static_cast<size_t>(c.payer)];
    std::string_view relationship = c.child ? "child" : "self";
    Obj period;
    period.Add("start", FormatDate(c.start));
    if (c.end != kNever) period.Add("end", FormatDate(c.end));
    std::string_view plan = payer.plan_type == "HIP" ? "PPO" : payer.name;
    json::Value coverage =
        Obj()
            .Add("resourceType", "Coverage")
            .Add("status", "active")
            .Add("type", Concept({kActCode, payer.plan_type,
                                  payer.plan_type == "HIP" ? "health insurance plan policy"
                                                           : "public healthcare"}))
            .Add("subscriberId", c.subscriber_id)
            .Add("beneficiary", PatientRef())
            .Add("relationship",
                 ConceptNoText({kSubscriberRelationship, relationship, c.child ? "Child" : "Self"}))
            .Add("period", period.Build())
            .Add("payor", List(OrganizationRef(c.payer)))
            .Add("class", List(Obj()
                                   .Add("type", ConceptNoText({kCoverageClass, "plan", "Plan"}))
                                   .Add("value", std::string(payer.id.substr(10)) + "-" +
                                                     std::string(plan == "PPO" ? "ppo" : "std"))
                                   .Add("name", std::string(payer.name) + " " + std::string(plan))
                                   .Build()))
            .Build();
    AddEntry(c.urn, "Coverage", std::move(coverage));
  }

  const CoverageRec& CoverageAt(int64_t t) const {
    for (const CoverageRec& c : coverages_)
      if (t >= c.start && (c.end == kNever || t < c.end + kDay)) return c;
    return coverages_.back();
  }

  void RenderCondition(size_t i) {
    const ConditionRec& r = conditions_[i];
    bool resolved = r.abatement != kNever;
    Obj c;
    c.Add("resourceType", "Condition")
        .Add("clinicalStatus", ConceptNoText({kConditionClinical, resolved ? "resolved" : "active",
                                              resolved ? "Resolved" : "Active"}))
        .Add("verificationStatus",
             ConceptNoText({kConditionVerification, "confirmed", "Confirmed"}))
        .Add("category",
             List(ConceptNoText(
                 r.chronic
                     ? Code{kConditionCategory, "problem-list-item", "Problem List Item"}
                     : Code{kConditionCategory, "encounter-diagnosis", "Encounter Diagnosis"})))
        .Add("code", Concept(r.code))
        .Add("subject", PatientRef());
    if (r.encounter >= 0) {
      c.Add("encounter", Ref(encounters_[static_cast<size_t>(r.encounter)].urn));
    }
    // Diagnoses from before the window are known to the day only.
    bool historic = r.encounter < 0;
    auto when = [historic](int64_t t) { return historic ? FormatDate(t) : FormatDateTime(t); };
    c.Add("onsetDateTime", when(r.onset));
    if (resolved) c.Add("abatementDateTime", when(r.abatement));
    int64_t recorded = historic ? r.onset : encounters_[static_cast<size_t>(r.encounter)].start;
    c.Add("recordedDate", when(std::max(recorded, r.onset)));
    if (r.encounter >= 0) {
      c.Add("recorder",
            PractitionerRef(encounters_[static_cast<size_t>(r.encounter)].practitioner));
    }
    AddEntry(r.urn, "Condition", c.Build());
  }

  void RenderAllergy(const EncounterRec& e, const AllergyRec& a) {
    const AllergyDef& d = *a.def;
    json::Value allergy =
        Obj()
            .Add("resourceType", "AllergyIntolerance")
            .Add("clinicalStatus", ConceptNoText({kAllergyClinical, "active", "Active"}))
            .Add("verificationStatus",
                 ConceptNoText({kAllergyVerification, "confirmed", "Confirmed"}))
            .Add("type", "allergy")
            .Add("category", List(d.category))
            .Add("criticality", d.criticality)
            .Add("code", Concept(d.code))
            .Add("patient", PatientRef())
            .Add("encounter", Ref(e.urn))
            .Add("onsetDateTime", FormatDate(a.onset))
            .Add("recordedDate", FormatDateTime(e.start))
            .Add("recorder", PractitionerRef(e.practitioner))
            .Add("reaction", List(Obj()
                                      .Add("manifestation", List(Concept(d.reaction)))
                                      .Add("severity", d.severity)
                                      .Build()))
            .Build();
    AddEntry(a.urn, "AllergyIntolerance", std::move(allergy));
  }

  // ---- Observations ----

  json::Value ObservationBase(std::string_view category, std::string_view category_display,
                              const Code& code) {
    return Obj()
        .Add("resourceType", "Observation")
        .Add("status", "final")
        .Add("category", List(ConceptNoText({kObservationCategory, category, category_display})))
        .Add("code", Concept(code))
        .Build();
  }

  // Adds an Observation with a Quantity value; returns its fullUrl.
  std::string AddQuantity(const EncounterRec& e, std::string_view category,
                          std::string_view category_display, const ObservationDef& def,
                          double value, int64_t at, json::Value extra = {}) {
    std::string urn = Urn();
    json::Value o = ObservationBase(category, category_display, def.code);
    o.Set("subject", PatientRef());
    o.Set("encounter", Ref(e.urn));
    o.Set("effectiveDateTime", FormatDateTime(at));
    o.Set("issued", FormatDateTime(at + (category == "laboratory" ? 6 * kHour : 0)));
    o.Set("valueQuantity", Quantity(value, def.places, def.unit, def.ucum));
    if (extra.is_object()) {
      for (auto& [k, v] : extra.as_object()) o.Set(k, std::move(v));
    }
    AddEntry(urn, "Observation", std::move(o));
    return urn;
  }

  static double Round(double v, int places) {
    double scale = places == 0 ? 1 : places == 1 ? 10 : 100;
    return static_cast<double>(std::llround(v * scale)) / scale;
  }

  void RenderVitals(const EncounterRec& e) {
    int64_t at = e.start + 5 * kMinute;
    double age = AgeAt(at);
    const char* kVital = "vital-signs";
    const char* kVitalDisplay = "Vital Signs";
    double height = Round(HeightAt(at) + rng_.Normal(0, 0.3), 1);
    double weight_true = BmiAt(at) * (HeightAt(at) / 100) * (HeightAt(at) / 100);
    double weight = Round(weight_true + rng_.Normal(0, age < 2 ? 0.04 : 0.3), 1);
    AddQuantity(e, kVital, kVitalDisplay, kBodyHeight, height, at);
    AddQuantity(e, kVital, kVitalDisplay, kBodyWeight, weight, at);
    if (age >= 2) {
      double m = height / 100;
      AddQuantity(e, kVital, kVitalDisplay, kBmi, weight / (m * m), at);
    }
    bool acute_care = !Ambulatory(e);
    if (age >= 3) {
      double sys = SystolicAt(at) + rng_.Normal(0, 5) + (acute_care ? 6 : 0);
      double dia = DiastolicFor(sys, age) + rng_.Normal(0, 3.5);
      sys = std::clamp(std::round(sys), 80.0, 220.0);
      dia = std::clamp(std::round(dia), 40.0, sys - 20);
      std::string urn = Urn();
      json::Value o = ObservationBase(kVital, kVitalDisplay, kBloodPressurePanel);
      o.Set("subject", PatientRef());
      o.Set("encounter", Ref(e.urn));
      o.Set("effectiveDateTime", FormatDateTime(at));
      o.Set("issued", FormatDateTime(at));
      auto component = [](const ObservationDef& def, double v) {
        return Obj()
            .Add("code", Concept(def.code))
            .Add("valueQuantity", Quantity(v, def.places, def.unit, def.ucum))
            .Build();
      };
      o.Set("component", List(component(kSystolic, sys), component(kDiastolic, dia)));
      AddEntry(urn, "Observation", std::move(o));
    }
    double hr = Interpolate(kHeartRateByAge, age) + 6 * z_hr_ + rng_.Normal(0, 4);
    if (Latent(Chronic::kAtrialFibrillation, at)) hr += 12;
    if (Smoker(at)) hr += 4;
    if (e.fever) hr += 10;
    if (acute_care) hr += 8;
    AddQuantity(e, kVital, kVitalDisplay, kHeartRate, std::clamp(hr, 45.0, 190.0), at);
    double rr = Interpolate(kRespiratoryRateByAge, age) + rng_.Normal(0, 1.2);
    if (Latent(Chronic::kCopd, at)) rr += 3;
    if (e.fever) rr += 2;
    AddQuantity(e, kVital, kVitalDisplay, kRespiratoryRate, std::clamp(rr, 10.0, 60.0), at);
    double temp = e.fever ? rng_.Uniform(38.0, 39.6) : 36.8 + rng_.Normal(0, 0.2);
    AddQuantity(e, kVital, kVitalDisplay, kBodyTemperature, temp, at);

    if (e.kind == Kind::kWellness && smoking_ != Smoking::kNone && age >= 16) {
      const Code& status = Smoker(at)                                            ? kDailySmoker
                           : smoking_ == Smoking::kFormer && at >= smoking_quit_ ? kExSmoker
                                                                                 : kNeverSmoker;
      std::string urn = Urn();
      json::Value o = ObservationBase("social-history", "Social History", kSmokingStatus);
      o.Set("subject", PatientRef());
      o.Set("encounter", Ref(e.urn));
      o.Set("effectiveDateTime", FormatDateTime(at));
      o.Set("issued", FormatDateTime(at));
      o.Set("valueCodeableConcept", Concept(status));
      AddEntry(urn, "Observation", std::move(o));
    }
  }

  json::Value Range(const ObservationDef& def, double low, double high) const {
    Obj r;
    if (low > 0) r.Add("low", Quantity(low, def.places, def.unit, def.ucum));
    if (high > 0) r.Add("high", Quantity(high, def.places, def.unit, def.ucum));
    return List(r.Build());
  }

  json::Value Interpretation(double value, double low, double high) const {
    Code code = low > 0 && value < low     ? Code{kObservationInterpretation, "L", "Low"}
                : high > 0 && value > high ? Code{kObservationInterpretation, "H", "High"}
                                           : Code{kObservationInterpretation, "N", "Normal"};
    return List(ConceptNoText(code));
  }

  // A lab result with its reference range and interpretation; returns its fullUrl.
  std::string AddLab(const EncounterRec& e, const ObservationDef& def, double value, int64_t at,
                     double low, double high) {
    value = Round(value, def.places);
    return AddQuantity(e, "laboratory", "Laboratory", def, value, at,
                       Obj()
                           .Add("interpretation", Interpretation(value, low, high))
                           .Add("referenceRange", Range(def, low, high))
                           .Build());
  }

  struct LabPlan {
    bool glucose = false, a1c = false, lipids = false, blood_count = false;
  };

  LabPlan PlanLabs(const EncounterRec& e) {
    LabPlan p;
    double age = AgeAt(e.start);
    const ConditionRec* dm = ChronicRec(Chronic::kDiabetes);
    bool diabetic = dm && Known(*dm, e.start);
    const ConditionRec* pre = ChronicRec(Chronic::kPrediabetes);
    bool prediabetic = pre && Known(*pre, e.start);
    switch (e.kind) {
      case Kind::kWellness:
        if (age < 18) break;
        p.glucose = true;
        p.a1c = diabetic || prediabetic || age >= 45 || Obese(e.start);
        p.lipids = age >= 20 && (last_lipids_ == kNever || e.start - last_lipids_ > 300 * kDay) &&
                   (age >= 40 || rng_.Chance(0.5));
        p.blood_count = age >= 40 || rng_.Chance(0.3);
        break;
      case Kind::kFollowUp:
        if (e.reason >= 0 && conditions_[static_cast<size_t>(e.reason)].chronic) {
          Chronic k = conditions_[static_cast<size_t>(e.reason)].kind;
          p.a1c = p.glucose = k == Chronic::kDiabetes;
          p.lipids = k == Chronic::kHyperlipidemia &&
                     (last_lipids_ == kNever || e.start - last_lipids_ > 150 * kDay);
        }
        break;
      case Kind::kInpatient:
        p.glucose = p.blood_count = true;
        p.a1c = diabetic;
        break;
      case Kind::kEmergency:
        p.glucose = p.blood_count = rng_.Chance(0.5);
        break;
      default:
        break;
    }
    if (p.lipids) last_lipids_ = e.start;
    return p;
  }

  void RenderLabs(const EncounterRec& e, const LabPlan& plan, std::vector<Code>& billed) {
    int64_t at = e.start + 15 * kMinute;
    double age = AgeAt(at);
    bool fasting = Ambulatory(e);
    double a1c = A1cAt(at) + rng_.Normal(0, 0.08);
    if (plan.glucose) {
      double glucose = 28.7 * a1c - 46.7 - 12 + rng_.Normal(0, 6) + (fasting ? 0 : 18);
      AddLab(e, kGlucose, std::max(55.0, glucose), at, 70, 99);
      billed.push_back(kGlucose.code);
    }
    if (plan.a1c) {
      AddLab(e, kHemoglobinA1c, a1c, at, 0, 5.6);
      billed.push_back(kHemoglobinA1c.code);
    }
    if (plan.blood_count) {
      double hb = (age < 12  ? 12.4
                   : female_ ? 13.6
                             : 15.1) +
                  0.6 * z_hemoglobin_ + rng_.Normal(0, 0.25) -
                  (e.kind == Kind::kInpatient ? 0.6 : 0);
      AddLab(e, kHemoglobin, hb, at, female_ ? 12.0 : 13.5, female_ ? 15.5 : 17.5);
      double cr =
          age < 18 ? 0.35 + 0.025 * age : (female_ ? 0.78 : 0.98) + 0.004 * std::max(0.0, age - 50);
      cr += 0.06 * z_creatinine_ + rng_.Normal(0, 0.04);
      if (const ConditionRec* dm = ChronicRec(Chronic::kDiabetes);
          dm && dm->latent != kNever && at > dm->latent + Years(8)) {
        cr += 0.15;
      }
      AddLab(e, kCreatinine, std::max(0.2, cr), at, female_ ? 0.5 : 0.7, female_ ? 1.1 : 1.3);
      billed.push_back(kHemoglobin.code);
      billed.push_back(kCreatinine.code);
    }
    if (plan.lipids) {
      double ldl = Round(LdlAt(at) + rng_.Normal(0, 6), 0);
      double hdl = Round(HdlAt(at) + rng_.Normal(0, 3), 0);
      double tg = Round(TriglyceridesAt(at) + rng_.Normal(0, 10), 0);
      double total = ldl + hdl + Round(tg / 5, 0);
      std::string r1 = AddLab(e, kCholesterol, total, at, 0, 199);
      std::string r2 = AddLab(e, kTriglycerides, tg, at, 0, 149);
      std::string r3 = AddLab(e, kLdl, ldl, at, 0, 99);
      std::string r4 = AddLab(e, kHdl, hdl, at, 40, 0);
      json::Value report =
          Obj()
              .Add("resourceType", "DiagnosticReport")
              .Add("status", "final")
              .Add("category",
                   List(ConceptNoText({kDiagnosticServiceSection, "LAB", "Laboratory"})))
              .Add("code", Concept(kLipidPanel))
              .Add("subject", PatientRef())
              .Add("encounter", Ref(e.urn))
              .Add("effectiveDateTime", FormatDateTime(at))
              .Add("issued", FormatDateTime(at + 6 * kHour))
              .Add("performer", List(OrganizationRef(e.organization)))
              .Add("result", List(Ref(r1), Ref(r2), Ref(r3), Ref(r4)))
              .Build();
      AddEntry(Urn(), "DiagnosticReport", std::move(report));
      billed.push_back(kLipidPanel);
    }
  }

  void RenderImmunization(const EncounterRec& e, const Code& vaccine) {
    json::Value imm =
        Obj()
            .Add("resourceType", "Immunization")
            .Add("status", "completed")
            .Add("vaccineCode", Concept(vaccine))
            .Add("patient", PatientRef())
            .Add("encounter", Ref(e.urn))
            .Add("occurrenceDateTime", FormatDateTime(e.start + 20 * kMinute))
            .Add("primarySource", true)
            .Add("performer", List(Obj().Add("actor", PractitionerRef(e.practitioner)).Build()))
            .Build();
    AddEntry(Urn(), "Immunization", std::move(imm));
  }

  void RenderMedication(const EncounterRec& e, const MedOrder& o) {
    const MedDef& m = *o.med;
    Obj repeat;
    repeat.Add("frequency", Integer(m.frequency))
        .Add("period", Decimal(m.period, 0))
        .Add("periodUnit", m.period_unit);
    Obj mr;
    mr.Add("resourceType", "MedicationRequest")
        .Add("status", o.status)
        .Add("intent", "order")
        .Add("medicationCodeableConcept", Concept(m.code))
        .Add("subject", PatientRef())
        .Add("encounter", Ref(e.urn))
        .Add("authoredOn", FormatDateTime(e.end - 2 * kMinute))
        .Add("requester", PractitionerRef(e.practitioner));
    if (o.condition >= 0) {
      mr.Add("reasonReference", List(Ref(conditions_[static_cast<size_t>(o.condition)].urn)));
    } else if (o.allergy >= 0) {
      mr.Add("reasonCode", List(Concept(allergies_[static_cast<size_t>(o.allergy)].def->code)));
    }
    mr.Add("dosageInstruction", List(Obj()
                                         .Add("sequence", Integer(1))
                                         .Add("text", m.instruction)
                                         .Add("timing", Obj().Add("repeat", repeat.Build()).Build())
                                         .Add("asNeededBoolean", m.as_needed)
                                         .Build()));
    AddEntry(o.urn, "MedicationRequest", mr.Build());
  }

  void RenderEncounter(size_t index) {
    const EncounterRec& e = encounters_[index];
    Code type = kGeneralExam;
    Code cls{kActCode, "AMB", "ambulatory"};
    switch (e.kind) {
      case Kind::kWellness:
        type = AgeAt(e.start) < 18 ? kWellChildVisit : kGeneralExam;
        break;
      case Kind::kFollowUp:
        type = kFollowUpVisit;
        break;
      case Kind::kProblem:
        type = kProblemVisit;
        break;
      case Kind::kAcute:
        type = kSymptomVisit;
        break;
      case Kind::kEmergency:
        type = kEmergencyVisit;
        cls = {kActCode, "EMER", "emergency"};
        break;
      case Kind::kInpatient:
        type = kHospitalAdmission;
        cls = {kActCode, "IMP", "inpatient encounter"};
        break;
    }
    json::Value period =
        Obj().Add("start", FormatDateTime(e.start)).Add("end", FormatDateTime(e.end)).Build();
    Obj enc;
    enc.Add("resourceType", "Encounter")
        .Add("status", "finished")
        .Add("class", Coding(cls))
        .Add("type", List(Concept(type)))
        .Add("subject", PatientRef())
        .Add("participant",
             List(Obj()
                      .Add("type",
                           List(ConceptNoText({kParticipationType, "PPRF", "primary performer"})))
                      .Add("period", period)
                      .Add("individual", PractitionerRef(e.practitioner))
                      .Build()))
        .Add("period", period);
    if (e.reason >= 0) {
      const ConditionRec& r = conditions_[static_cast<size_t>(e.reason)];
      enc.Add("reasonCode", List(Concept(r.code))).Add("reasonReference", List(Ref(r.urn)));
    }
    if (e.kind == Kind::kInpatient) {
      enc.Add(
          "hospitalization",
          Obj()
              .Add("admitSource",
                   ConceptNoText({"http://terminology.hl7.org/CodeSystem/admit-source", "emd",
                                  "From accident/emergency department"}))
              .Add("dischargeDisposition", ConceptNoText({kDischargeDisposition, "home", "Home"}))
              .Build());
    }
    enc.Add("serviceProvider", OrganizationRef(e.organization));
    AddEntry(e.urn, "Encounter", enc.Build());

    for (int c : e.diagnoses) RenderCondition(static_cast<size_t>(c));
    for (int a : e.allergies) RenderAllergy(e, allergies_[static_cast<size_t>(a)]);
    RenderVitals(e);
    std::vector<Code> labs;
    RenderLabs(e, PlanLabs(e), labs);
    for (const Code& v : e.vaccines) RenderImmunization(e, v);
    for (const MedOrder& o : e.orders) RenderMedication(e, o);
    RenderClaim(e, type, labs);
  }

  void RenderClaim(const EncounterRec& e, const Code& type, const std::vector<Code>& labs) {
    int64_t total = 0;
    json::Array items;
    auto item = [&](const Code& code, int64_t cents, bool with_encounter) {
      total += cents;
      Obj i;
      i.Add("sequence", Integer(static_cast<int64_t>(items.size()) + 1))
          .Add("productOrService", Concept(code));
      if (with_encounter) i.Add("encounter", List(Ref(e.urn)));
      i.Add("net", Money(cents));
      items.push_back(i.Build());
    };
    int64_t base = 0;
    switch (e.kind) {
      case Kind::kWellness:
        base = rng_.Int(13600, 21000);
        break;
      case Kind::kFollowUp:
        base = rng_.Int(9000, 15000);
        break;
      case Kind::kProblem:
      case Kind::kAcute:
        base = rng_.Int(11000, 18000);
        break;
      case Kind::kEmergency:
        base = rng_.Int(80000, 250000);
        break;
      case Kind::kInpatient:
        base = 900000 + (e.end - e.start) / kDay * rng_.Int(220000, 310000);
        break;
    }
    item(type, base, true);
    for (const Code& l : labs) item(l, rng_.Int(1500, 6000), false);
    for (const Code& v : e.vaccines) item(v, rng_.Int(9500, 19000), false);
    for (const MedOrder& o : e.orders)
      item(o.med->code, rng_.Int(o.med->price_lo, o.med->price_hi), false);

    json::Array diagnoses;
    std::vector<int> reasons = e.diagnoses;
    if (e.reason >= 0 && std::find(reasons.begin(), reasons.end(), e.reason) == reasons.end()) {
      reasons.insert(reasons.begin(), e.reason);
    }
    for (int c : reasons) {
      diagnoses.push_back(
          Obj()
              .Add("sequence", Integer(static_cast<int64_t>(diagnoses.size()) + 1))
              .Add("diagnosisReference", Ref(conditions_[static_cast<size_t>(c)].urn))
              .Build());
    }
    bool institutional = !Ambulatory(e);
    Obj claim;
    claim.Add("resourceType", "Claim")
        .Add("status", "active")
        .Add("type",
             ConceptNoText(institutional ? Code{kClaimType, "institutional", "Institutional"}
                                         : Code{kClaimType, "professional", "Professional"}))
        .Add("use", "claim")
        .Add("patient", PatientRef())
        .Add("billablePeriod",
             Obj().Add("start", FormatDateTime(e.start)).Add("end", FormatDateTime(e.end)).Build())
        .Add("created", FormatDateTime(e.end))
        .Add("provider", OrganizationRef(e.organization))
        .Add("priority",
             ConceptNoText(e.kind == Kind::kEmergency ? Code{kProcessPriority, "stat", "Immediate"}
                                                      : Code{kProcessPriority, "normal", "Normal"}))
        .Add("careTeam", List(Obj()
                                  .Add("sequence", Integer(1))
                                  .Add("provider", PractitionerRef(e.practitioner))
                                  .Build()));
    if (!diagnoses.empty()) claim.Add("diagnosis", json::Value(std::move(diagnoses)));
    const CoverageRec& coverage = CoverageAt(e.start);
    claim
        .Add("insurance", List(Obj()
                                   .Add("sequence", Integer(1))
                                   .Add("focal", true)
                                   .Add("coverage", Ref(coverage.urn))
                                   .Build()))
        .Add("item", json::Value(std::move(items)))
        .Add("total", Money(total));
    AddEntry(Urn(), "Claim", claim.Build());
  }

  const Directory& dir_;
  const GenerateOptions& options_;
  int64_t index_;
  Rng rng_;
  UuidSource uuids_;
  int64_t now_;
  int64_t birth_ = 0;
  int64_t window_start_ = 0;

  // Demographics.
  bool female_ = false;
  const Origin* origin_ = nullptr;
  std::vector<std::string> given_;
  std::string family_;
  std::string maiden_name_;
  Code race_;
  Code second_race_;
  Code language_;
  const Town* town_ = nullptr;
  std::string street_, apartment_, home_phone_, mobile_phone_, email_;
  std::string mrn_, ssn_, marital_;
  std::string patient_urn_;

  // Traits.
  double z_height_ = 0, z_bmi_ = 0, z_bp_ = 0, z_hr_ = 0, z_lipid_ = 0, z_hdl_ = 0, z_tg_ = 0;
  double z_glucose_ = 0, z_creatinine_ = 0, z_hemoglobin_ = 0;
  std::optional<Trend> bmi_trend_, bp_trend_, a1c_trend_, ldl_trend_;
  Smoking smoking_ = Smoking::kNone;
  int64_t smoking_start_ = kNever;
  int64_t smoking_quit_ = kNever;

  // History.
  std::vector<ConditionRec> conditions_;
  std::array<int, kChronicCount> chronic_{};
  std::vector<EncounterRec> encounters_;
  std::vector<AllergyRec> allergies_;
  std::vector<CoverageRec> coverages_;
  // Orders of one (condition, allergy, medication), in time order: (encounter, order) indices.
  std::map<std::tuple<int, int, const MedDef*>, std::vector<std::pair<int, int>>> chains_;
  int hospital_ = 0, adult_clinic_ = 0, child_clinic_ = 0, adult_gp_ = 0, child_gp_ = 0;
  int64_t last_lipids_ = kNever;

  json::Array entries_;
};

}  // namespace

json::Value BuildPatientBundle(const Directory& directory, const GenerateOptions& options,
                               int64_t index) {
  return PatientBuilder(directory, options, index).Build();
}

}  // namespace fhirstone::generate::internal
