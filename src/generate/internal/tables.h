// The generator's fixed tables: terminology codes (SNOMED CT conditions and encounter types,
// LOINC observations, RxNorm medications, CVX vaccines), the clinical parameters attached to them
// (incidence by age, treatments, durations, prices), and the demographic tables (names of varied
// origins, towns, streets). Constant data only: thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "generate/internal/fhir.h"

namespace fhirstone::generate::internal {

// ---- Medications (RxNorm) ---------------------------------------------------------------------

struct MedDef {
  Code code;
  std::string_view instruction;  // dosageInstruction.text
  int frequency;                 // timing.repeat: `frequency` times per `period` `period_unit`
  int period;
  std::string_view period_unit;
  bool as_needed;
  int price_lo;  // claim item price range, cents
  int price_hi;
};

#define FHIRSTONE_RX(name, code, display, text, freq, period, unit, prn, lo, hi) \
  inline constexpr MedDef name { {kRxNorm, code, display}, text, freq, period, unit, prn, lo, hi }

FHIRSTONE_RX(kLisinopril, "314076", "lisinopril 10 MG Oral Tablet",
             "Take 1 tablet by mouth once daily", 1, 1, "d", false, 600, 2400);
FHIRSTONE_RX(kHydrochlorothiazide, "310798", "Hydrochlorothiazide 25 MG Oral Tablet",
             "Take 1 tablet by mouth every morning", 1, 1, "d", false, 500, 1800);
FHIRSTONE_RX(kAmlodipine, "197361", "Amlodipine 5 MG Oral Tablet",
             "Take 1 tablet by mouth once daily", 1, 1, "d", false, 700, 2600);
FHIRSTONE_RX(kMetformin, "860975",
             "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
             "Take 1 tablet by mouth once daily with the evening meal", 1, 1, "d", false, 900,
             3200);
FHIRSTONE_RX(kInsulin, "106892",
             "insulin human, isophane 70 UNT/ML / Regular Insulin, Human 30 UNT/ML Injectable "
             "Suspension [Humulin]",
             "Inject 20 units under the skin twice daily before meals", 2, 1, "d", false, 9000,
             32000);
FHIRSTONE_RX(kSimvastatin20, "312961", "Simvastatin 20 MG Oral Tablet",
             "Take 1 tablet by mouth every evening", 1, 1, "d", false, 500, 2200);
FHIRSTONE_RX(kSimvastatin10, "314231", "Simvastatin 10 MG Oral Tablet",
             "Take 1 tablet by mouth every evening", 1, 1, "d", false, 400, 1800);
FHIRSTONE_RX(kFluticasone, "895994",
             "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
             "Inhale 2 puffs by mouth twice daily; rinse mouth after use", 2, 1, "d", false, 9000,
             24000);
FHIRSTONE_RX(kAlbuterol, "2123111",
             "NDA020503 200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
             "Inhale 2 puffs by mouth every 4 to 6 hours as needed for wheezing or shortness of "
             "breath",
             1, 4, "h", true, 3000, 7000);
FHIRSTONE_RX(kFluticasoneSalmeterol, "896209",
             "60 ACTUAT Fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Dry "
             "Powder Inhaler",
             "Inhale 1 puff by mouth twice daily", 2, 1, "d", false, 25000, 42000);
FHIRSTONE_RX(kClopidogrel, "309362", "Clopidogrel 75 MG Oral Tablet",
             "Take 1 tablet by mouth once daily", 1, 1, "d", false, 900, 4500);
FHIRSTONE_RX(
    kNitroglycerin, "705129", "Nitroglycerin 0.4 MG/ACTUAT Mucosal Spray",
    "Spray 1 dose under the tongue at the onset of chest pain; may repeat every 5 minutes, "
    "at most 3 doses",
    1, 5, "min", true, 12000, 30000);
FHIRSTONE_RX(kAspirin, "243670", "Aspirin 81 MG Oral Tablet", "Take 1 tablet by mouth once daily",
             1, 1, "d", false, 200, 900);
FHIRSTONE_RX(kWarfarin, "855332", "Warfarin Sodium 5 MG Oral Tablet",
             "Take 1 tablet by mouth once daily in the evening, or as directed by the "
             "anticoagulation clinic",
             1, 1, "d", false, 600, 2500);
FHIRSTONE_RX(kDigoxin, "197604", "Digoxin 0.125 MG Oral Tablet",
             "Take 1 tablet by mouth once daily", 1, 1, "d", false, 900, 3500);
FHIRSTONE_RX(kLoratadine, "665078", "Loratadine 5 MG Chewable Tablet",
             "Chew 1 tablet once daily as needed for allergy symptoms", 1, 1, "d", true, 400, 1500);
FHIRSTONE_RX(kFexofenadine, "997488", "Fexofenadine hydrochloride 30 MG Oral Tablet",
             "Take 1 tablet by mouth twice daily as needed for allergy symptoms", 2, 1, "d", true,
             500, 1800);
FHIRSTONE_RX(kNaproxen, "849574", "Naproxen sodium 220 MG Oral Tablet",
             "Take 1 tablet by mouth every 8 to 12 hours with food as needed for pain", 1, 8, "h",
             true, 300, 1200);
FHIRSTONE_RX(kAcetaminophen, "313782", "Acetaminophen 325 MG Oral Tablet",
             "Take 2 tablets by mouth every 6 hours as needed for pain or fever", 1, 6, "h", true,
             200, 900);
FHIRSTONE_RX(kAcetaminophenChild, "313820", "Acetaminophen 160 MG Chewable Tablet",
             "Chew 1 tablet every 6 hours as needed for fever; dose by weight", 1, 6, "h", true,
             200, 900);
FHIRSTONE_RX(kIbuprofen, "310965", "Ibuprofen 200 MG Oral Tablet",
             "Take 2 tablets by mouth every 6 to 8 hours with food as needed for pain", 1, 6, "h",
             true, 200, 900);
FHIRSTONE_RX(kAmoxicillinClavulanate, "562251",
             "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet",
             "Take 1 tablet by mouth every 8 hours for 10 days", 3, 1, "d", false, 1500, 4500);
FHIRSTONE_RX(kAmoxicillin, "308182", "Amoxicillin 250 MG Oral Capsule",
             "Take 1 capsule by mouth every 8 hours for 10 days", 3, 1, "d", false, 800, 2500);
FHIRSTONE_RX(kPenicillinV, "834061", "Penicillin V Potassium 250 MG Oral Tablet",
             "Take 1 tablet by mouth every 6 hours for 10 days", 4, 1, "d", false, 800, 2400);
FHIRSTONE_RX(kCefuroxime, "309097", "Cefuroxime 250 MG Oral Tablet",
             "Take 1 tablet by mouth every 12 hours for 7 days", 2, 1, "d", false, 1800, 5200);
FHIRSTONE_RX(kHydrocodoneApap, "856987",
             "Acetaminophen 300 MG / Hydrocodone Bitartrate 5 MG Oral Tablet",
             "Take 1 tablet by mouth every 6 hours as needed for severe pain, at most 5 days", 1, 6,
             "h", true, 1200, 4000);
FHIRSTONE_RX(kEpinephrine, "1870230", "NDA020800 0.3 ML Epinephrine 1 MG/ML Auto-Injector",
             "Inject into the outer thigh at the first sign of anaphylaxis, then call 911", 1, 1,
             "d", true, 30000, 65000);

#undef FHIRSTONE_RX

// ---- Chronic conditions (SNOMED CT) -----------------------------------------------------------

enum class Chronic {
  kHypertension,
  kDiabetes,
  kPrediabetes,
  kHyperlipidemia,
  kObesity,
  kAsthma,
  kCopd,
  kCoronaryDisease,
  kAtrialFibrillation,
  kDepression,
  kAnxiety,
  kOsteoarthritis,
  kBackPain,
  kAllergicRhinitis,
  kHypothyroidism,
};
inline constexpr int kChronicCount = 15;

// A point of a piecewise linear curve, such as a cumulative incidence (the probability of having
// had a condition by age x) or a growth chart.
struct CurvePoint {
  double x;
  double y;
};

struct ChronicDef {
  Chronic id;
  Code code;
  std::span<const CurvePoint> incidence;  // cumulative incidence by age, increasing
  double female_risk;                     // relative risk of women
  bool found_at_checkup;         // diagnosed at a wellness visit (labs, BMI), not a problem visit
  double follow_ups_per_year;    // extra ambulatory visits while active
  double remission_probability;  // chance that it abates (with abatementDateTime)
  const MedDef* first_line;      // started at diagnosis (nullptr: none)
  const MedDef* second_line;     // added later for some patients
  double second_line_probability;
};

// Indexed by Chronic.
std::span<const ChronicDef> ChronicConditions();
inline const ChronicDef& ChronicInfo(Chronic c) {
  return ChronicConditions()[static_cast<size_t>(c)];
}

// ---- Acute conditions and admissions ----------------------------------------------------------

struct AcuteDef {
  Code code;
  int min_age;
  int max_age;
  double weight;       // relative frequency among acute problems
  double female_risk;  // relative risk of women
  int days_lo;         // duration until abatement
  int days_hi;
  const MedDef* adult_med;
  const MedDef* child_med;  // under 12; nullptr: adult_med
  double med_probability;
  double fever_probability;
  double emergency_probability;  // seen in the emergency department rather than the clinic
};
std::span<const AcuteDef> AcuteConditions();

struct AdmissionDef {
  Code code;
  int min_age;
  int max_age;
  double weight;
  double elderly_factor;  // weight multiplier at 65 and over
  int stay_lo;            // days in hospital
  int stay_hi;
  int recovery_days;  // from admission to abatement
  const MedDef* med;  // at discharge
  bool leads_to_coronary_disease;
};
std::span<const AdmissionDef> Admissions();

// ---- Encounter types --------------------------------------------------------------------------

inline constexpr Code kWellChildVisit{kSnomed, "410620009", "Well child visit (procedure)"};
inline constexpr Code kGeneralExam{kSnomed, "162673000",
                                   "General examination of patient (procedure)"};
inline constexpr Code kFollowUpVisit{kSnomed, "390906007", "Follow-up encounter (procedure)"};
inline constexpr Code kProblemVisit{kSnomed, "185347001", "Encounter for problem (procedure)"};
inline constexpr Code kSymptomVisit{kSnomed, "185345009", "Encounter for symptom (procedure)"};
inline constexpr Code kEmergencyVisit{kSnomed, "50849002", "Emergency room admission (procedure)"};
inline constexpr Code kHospitalAdmission{kSnomed, "32485007", "Hospital admission (procedure)"};

// ---- Observations (LOINC, UCUM) ---------------------------------------------------------------

struct ObservationDef {
  Code code;
  std::string_view unit;  // human-readable
  std::string_view ucum;
  int places;  // decimals written
};

inline constexpr ObservationDef kBodyHeight{{kLoinc, "8302-2", "Body height"}, "cm", "cm", 1};
inline constexpr ObservationDef kBodyWeight{{kLoinc, "29463-7", "Body weight"}, "kg", "kg", 1};
inline constexpr ObservationDef kBmi{
    {kLoinc, "39156-5", "Body mass index (BMI) [Ratio]"}, "kg/m2", "kg/m2", 1};
inline constexpr Code kBloodPressurePanel{kLoinc, "85354-9",
                                          "Blood pressure panel with all children optional"};
inline constexpr ObservationDef kSystolic{
    {kLoinc, "8480-6", "Systolic blood pressure"}, "mm[Hg]", "mm[Hg]", 0};
inline constexpr ObservationDef kDiastolic{
    {kLoinc, "8462-4", "Diastolic blood pressure"}, "mm[Hg]", "mm[Hg]", 0};
inline constexpr ObservationDef kHeartRate{
    {kLoinc, "8867-4", "Heart rate"}, "beats/minute", "/min", 0};
inline constexpr ObservationDef kRespiratoryRate{
    {kLoinc, "9279-1", "Respiratory rate"}, "breaths/minute", "/min", 0};
inline constexpr ObservationDef kBodyTemperature{
    {kLoinc, "8310-5", "Body temperature"}, "Cel", "Cel", 1};
inline constexpr Code kSmokingStatus{kLoinc, "72166-2", "Tobacco smoking status"};

inline constexpr ObservationDef kGlucose{
    {kLoinc, "2339-0", "Glucose [Mass/volume] in Blood"}, "mg/dL", "mg/dL", 0};
inline constexpr ObservationDef kHemoglobinA1c{
    {kLoinc, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"}, "%", "%", 1};
inline constexpr ObservationDef kCholesterol{
    {kLoinc, "2093-3", "Cholesterol [Mass/volume] in Serum or Plasma"}, "mg/dL", "mg/dL", 0};
inline constexpr ObservationDef kTriglycerides{
    {kLoinc, "2571-8", "Triglyceride [Mass/volume] in Serum or Plasma"}, "mg/dL", "mg/dL", 0};
inline constexpr ObservationDef kLdl{
    {kLoinc, "18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay"},
    "mg/dL",
    "mg/dL",
    0};
inline constexpr ObservationDef kHdl{
    {kLoinc, "2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma"}, "mg/dL", "mg/dL", 0};
inline constexpr ObservationDef kHemoglobin{
    {kLoinc, "718-7", "Hemoglobin [Mass/volume] in Blood"}, "g/dL", "g/dL", 1};
inline constexpr ObservationDef kCreatinine{
    {kLoinc, "38483-4", "Creatinine [Mass/volume] in Blood"}, "mg/dL", "mg/dL", 2};
inline constexpr Code kLipidPanel{kLoinc, "57698-3",
                                  "Lipid panel with direct LDL - Serum or Plasma"};

inline constexpr Code kNeverSmoker{kSnomed, "266919005", "Never smoked tobacco (finding)"};
inline constexpr Code kExSmoker{kSnomed, "8517006", "Ex-smoker (finding)"};
inline constexpr Code kDailySmoker{kSnomed, "449868002", "Smokes tobacco daily (finding)"};

// ---- Vaccines (CVX) ---------------------------------------------------------------------------

inline constexpr Code kFluVaccine{kCvx, "140",
                                  "Influenza, seasonal, injectable, preservative free"};
inline constexpr Code kTdVaccine{kCvx, "113", "Td (adult) preservative free"};
inline constexpr Code kZosterVaccine{kCvx, "121", "zoster"};
inline constexpr Code kPpsv23Vaccine{kCvx, "33", "pneumococcal polysaccharide vaccine, 23 valent"};
inline constexpr Code kPcv13Vaccine{kCvx, "133", "Pneumococcal conjugate PCV 13"};

// A childhood dose: the vaccine due at `age_days`.
struct ScheduledDose {
  Code vaccine;
  int age_days;
};
std::span<const ScheduledDose> ChildhoodSchedule();

// ---- Allergies (SNOMED CT) --------------------------------------------------------------------

struct AllergyDef {
  Code code;
  std::string_view category;     // food | medication | environment | biologic
  std::string_view criticality;  // low | high | unable-to-assess
  Code reaction;
  std::string_view severity;  // mild | moderate | severe
  int onset_age_lo;
  int onset_age_hi;
  double weight;
  bool needs_epinephrine;
};
std::span<const AllergyDef> Allergies();

// ---- Demographics ------------------------------------------------------------------------------

inline constexpr std::string_view kRaceSystem = "urn:oid:2.16.840.1.113883.6.238";
inline constexpr Code kRaceWhite{kRaceSystem, "2106-3", "White"};
inline constexpr Code kRaceBlack{kRaceSystem, "2054-5", "Black or African American"};
inline constexpr Code kRaceAsian{kRaceSystem, "2028-9", "Asian"};
inline constexpr Code kRaceNative{kRaceSystem, "1002-5", "American Indian or Alaska Native"};
inline constexpr Code kRacePacific{kRaceSystem, "2076-8",
                                   "Native Hawaiian or Other Pacific Islander"};
inline constexpr Code kHispanic{kRaceSystem, "2135-2", "Hispanic or Latino"};
inline constexpr Code kNotHispanic{kRaceSystem, "2186-5", "Not Hispanic or Latino"};

inline constexpr std::string_view kLanguageSystem = "urn:ietf:bcp:47";
inline constexpr Code kEnglish{kLanguageSystem, "en-US", "English (United States)"};

// People of one origin: name tables, the race/ethnicity they most often report, and the language
// some of them prefer.
struct Origin {
  double weight;
  std::span<const std::string_view> male;
  std::span<const std::string_view> female;
  std::span<const std::string_view> family;
  Code race;
  bool hispanic;
  Code language;               // a non-English language (system empty: none)
  double language_preference;  // share who prefer it
};
std::span<const Origin> Origins();

struct Town {
  std::string_view city;
  std::string_view state;
  std::string_view postal_code;
  std::string_view area_code;
};
std::span<const Town> Towns();
std::span<const std::string_view> Streets();

// Ages in years by 5-year bands (0-4, 5-9, ... 90-94): relative population weights.
std::span<const double> AgeBandWeights();

// Median height (cm) and BMI of children and adults by age, per sex.
double MedianHeight(bool female, double age);
double MedianBmi(bool female, double age);

// Interpolates a piecewise linear curve at `x` (flat outside its range). REQUIRES: !curve.empty().
double Interpolate(std::span<const CurvePoint> curve, double x);

}  // namespace fhirstone::generate::internal
