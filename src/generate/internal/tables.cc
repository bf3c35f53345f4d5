#include "generate/internal/tables.h"

namespace fhirstone::generate::internal {
namespace {

using C = CurvePoint;

// ---- Chronic conditions -----------------------------------------------------------------------

constexpr CurvePoint kHypertensionIncidence[] = {{18, 0},    {30, 0.05}, {40, 0.14}, {50, 0.28},
                                                 {60, 0.43}, {70, 0.58}, {80, 0.68}, {95, 0.75}};
constexpr CurvePoint kDiabetesIncidence[] = {{25, 0},    {40, 0.04}, {50, 0.10},
                                             {60, 0.17}, {70, 0.23}, {95, 0.28}};
constexpr CurvePoint kPrediabetesIncidence[] = {
    {18, 0}, {30, 0.05}, {45, 0.15}, {60, 0.28}, {95, 0.35}};
constexpr CurvePoint kHyperlipidemiaIncidence[] = {{20, 0},    {35, 0.05}, {45, 0.14},
                                                   {55, 0.26}, {65, 0.36}, {95, 0.44}};
constexpr CurvePoint kNoIncidence[] = {{0, 0}};  // obesity follows the BMI instead
constexpr CurvePoint kAsthmaIncidence[] = {{1, 0}, {5, 0.05}, {12, 0.085}, {30, 0.10}, {95, 0.12}};
constexpr CurvePoint kCopdIncidence[] = {{40, 0}, {60, 0.03}, {80, 0.07}, {95, 0.08}};
constexpr CurvePoint kCoronaryIncidence[] = {
    {45, 0}, {60, 0.04}, {70, 0.10}, {85, 0.20}, {95, 0.24}};
constexpr CurvePoint kAtrialFibrillationIncidence[] = {{55, 0}, {70, 0.04}, {85, 0.12}, {95, 0.15}};
constexpr CurvePoint kDepressionIncidence[] = {{12, 0}, {25, 0.07}, {45, 0.13}, {95, 0.18}};
constexpr CurvePoint kAnxietyIncidence[] = {{10, 0}, {25, 0.07}, {95, 0.13}};
constexpr CurvePoint kOsteoarthritisIncidence[] = {{40, 0}, {60, 0.08}, {80, 0.20}, {95, 0.25}};
constexpr CurvePoint kBackPainIncidence[] = {{25, 0}, {50, 0.07}, {95, 0.11}};
constexpr CurvePoint kAllergicRhinitisIncidence[] = {{3, 0}, {15, 0.10}, {95, 0.16}};
constexpr CurvePoint kHypothyroidismIncidence[] = {{20, 0}, {60, 0.04}, {95, 0.08}};

constexpr ChronicDef kChronic[] = {
    {Chronic::kHypertension,
     {kSnomed, "38341003", "Hypertensive disorder, systemic arterial (disorder)"},
     kHypertensionIncidence,
     0.9,
     false,
     1.0,
     0.0,
     &kLisinopril,
     &kHydrochlorothiazide,
     0.4},
    {Chronic::kDiabetes,
     {kSnomed, "44054006", "Diabetes mellitus type 2 (disorder)"},
     kDiabetesIncidence,
     0.85,
     true,
     2.0,
     0.0,
     &kMetformin,
     &kInsulin,
     0.15},
    {Chronic::kPrediabetes,
     {kSnomed, "15777000", "Prediabetes (finding)"},
     kPrediabetesIncidence,
     1.0,
     true,
     0.0,
     0.0,
     nullptr,
     nullptr,
     0},
    {Chronic::kHyperlipidemia,
     {kSnomed, "55822004", "Hyperlipidemia (disorder)"},
     kHyperlipidemiaIncidence,
     0.9,
     true,
     0.5,
     0.0,
     &kSimvastatin20,
     nullptr,
     0},
    {Chronic::kObesity,
     {kSnomed, "414916001", "Obesity (disorder)"},
     kNoIncidence,
     1.0,
     true,
     0.0,
     0.0,
     nullptr,
     nullptr,
     0},
    {Chronic::kAsthma,
     {kSnomed, "195967001", "Asthma (disorder)"},
     kAsthmaIncidence,
     1.0,
     false,
     0.5,
     0.3,
     &kAlbuterol,
     &kFluticasone,
     0.5},
    {Chronic::kCopd,
     {kSnomed, "185086009", "Chronic obstructive bronchitis (disorder)"},
     kCopdIncidence,
     0.9,
     false,
     1.0,
     0.0,
     &kFluticasoneSalmeterol,
     &kAlbuterol,
     0.7},
    {Chronic::kCoronaryDisease,
     {kSnomed, "53741008", "Coronary arteriosclerosis (disorder)"},
     kCoronaryIncidence,
     0.6,
     false,
     1.0,
     0.0,
     &kAspirin,
     &kNitroglycerin,
     0.6},
    {Chronic::kAtrialFibrillation,
     {kSnomed, "49436004", "Atrial fibrillation (disorder)"},
     kAtrialFibrillationIncidence,
     0.8,
     false,
     1.0,
     0.0,
     &kWarfarin,
     &kDigoxin,
     0.3},
    {Chronic::kDepression,
     {kSnomed, "35489007", "Depressive disorder (disorder)"},
     kDepressionIncidence,
     1.7,
     false,
     1.0,
     0.4,
     nullptr,
     nullptr,
     0},
    {Chronic::kAnxiety,
     {kSnomed, "197480006", "Anxiety disorder (disorder)"},
     kAnxietyIncidence,
     1.6,
     false,
     0.5,
     0.3,
     nullptr,
     nullptr,
     0},
    {Chronic::kOsteoarthritis,
     {kSnomed, "239873007", "Osteoarthritis of knee (disorder)"},
     kOsteoarthritisIncidence,
     1.3,
     false,
     0.3,
     0.0,
     &kNaproxen,
     nullptr,
     0},
    {Chronic::kBackPain,
     {kSnomed, "278860009", "Chronic low back pain (finding)"},
     kBackPainIncidence,
     1.0,
     false,
     0.3,
     0.2,
     &kIbuprofen,
     nullptr,
     0},
    {Chronic::kAllergicRhinitis,
     {kSnomed, "367498001", "Seasonal allergic rhinitis (disorder)"},
     kAllergicRhinitisIncidence,
     1.0,
     false,
     0.0,
     0.1,
     &kFexofenadine,
     nullptr,
     0},
    {Chronic::kHypothyroidism,
     {kSnomed, "40930008", "Hypothyroidism (disorder)"},
     kHypothyroidismIncidence,
     3.0,
     false,
     0.3,
     0.0,
     nullptr,
     nullptr,
     0},
};
static_assert(sizeof(kChronic) / sizeof(kChronic[0]) == kChronicCount);

// ---- Acute conditions and admissions ----------------------------------------------------------

constexpr AcuteDef kAcute[] = {
    {{kSnomed, "444814009", "Viral sinusitis (disorder)"},
     2,
     95,
     3.0,
     1.1,
     10,
     20,
     &kAcetaminophen,
     &kAcetaminophenChild,
     0.3,
     0.2,
     0.02},
    {{kSnomed, "75498004", "Acute bacterial sinusitis (disorder)"},
     5,
     95,
     0.8,
     1.1,
     10,
     21,
     &kAmoxicillinClavulanate,
     &kAmoxicillin,
     0.9,
     0.3,
     0.02},
    {{kSnomed, "10509002", "Acute bronchitis (disorder)"},
     0,
     95,
     2.0,
     1.0,
     14,
     28,
     &kAcetaminophen,
     &kAcetaminophenChild,
     0.4,
     0.4,
     0.05},
    {{kSnomed, "195662009", "Acute viral pharyngitis (disorder)"},
     2,
     95,
     2.5,
     1.0,
     5,
     10,
     &kAcetaminophen,
     &kAcetaminophenChild,
     0.4,
     0.5,
     0.02},
    {{kSnomed, "43878008", "Streptococcal sore throat (disorder)"},
     3,
     45,
     1.0,
     1.0,
     7,
     12,
     &kPenicillinV,
     &kAmoxicillin,
     1.0,
     0.8,
     0.03},
    {{kSnomed, "65363002", "Otitis media (disorder)"},
     0,
     10,
     2.5,
     1.0,
     7,
     14,
     &kAmoxicillin,
     &kAmoxicillin,
     0.8,
     0.5,
     0.05},
    {{kSnomed, "38822007", "Cystitis (disorder)"},
     16,
     95,
     0.3,
     5.0,
     5,
     10,
     &kCefuroxime,
     &kCefuroxime,
     1.0,
     0.15,
     0.05},
    {{kSnomed, "44465007", "Sprain of ankle (disorder)"},
     8,
     80,
     1.0,
     1.0,
     14,
     42,
     &kIbuprofen,
     &kIbuprofen,
     0.7,
     0.0,
     0.35},
    {{kSnomed, "70704007", "Sprain of wrist (disorder)"},
     8,
     90,
     0.5,
     1.0,
     14,
     42,
     &kNaproxen,
     &kIbuprofen,
     0.6,
     0.0,
     0.3},
    {{kSnomed, "62106007", "Concussion with no loss of consciousness (disorder)"},
     4,
     90,
     0.3,
     0.8,
     14,
     35,
     &kAcetaminophen,
     &kAcetaminophenChild,
     0.6,
     0.0,
     0.8},
    {{kSnomed, "16114001", "Fracture of ankle (disorder)"},
     8,
     95,
     0.25,
     1.0,
     42,
     84,
     &kHydrocodoneApap,
     &kAcetaminophenChild,
     0.8,
     0.0,
     0.9},
    {{kSnomed, "283371005", "Laceration of forearm (disorder)"},
     4,
     90,
     0.3,
     0.8,
     10,
     20,
     nullptr,
     nullptr,
     0.0,
     0.0,
     0.7},
    {{kSnomed, "233604007", "Pneumonia (disorder)"},
     0,
     95,
     0.4,
     1.0,
     14,
     28,
     &kCefuroxime,
     &kAmoxicillin,
     1.0,
     0.8,
     0.4},
};

constexpr AdmissionDef kAdmissions[] = {
    {{kSnomed, "233604007", "Pneumonia (disorder)"},
     0,
     95,
     1.0,
     3.0,
     3,
     7,
     28,
     &kCefuroxime,
     false},
    {{kSnomed, "22298006", "Myocardial infarction (disorder)"},
     40,
     95,
     0.5,
     2.5,
     3,
     6,
     42,
     &kClopidogrel,
     true},
    {{kSnomed, "230690007", "Cerebrovascular accident (disorder)"},
     50,
     95,
     0.35,
     3.0,
     4,
     9,
     90,
     &kClopidogrel,
     false},
    {{kSnomed, "74400008", "Appendicitis (disorder)"},
     5,
     60,
     0.5,
     0.5,
     2,
     4,
     21,
     &kAcetaminophen,
     false},
    {{kSnomed, "91302008", "Sepsis (disorder)"}, 0, 95, 0.2, 3.0, 5, 12, 45, nullptr, false},
};

// ---- Vaccines ---------------------------------------------------------------------------------

constexpr Code kHepB{kCvx, "08", "Hep B, adolescent or pediatric"};
constexpr Code kRotavirus{kCvx, "119", "rotavirus, monovalent"};
constexpr Code kDtap{kCvx, "20", "DTaP"};
constexpr Code kHib{kCvx, "49", "Hib (PRP-OMP)"};
constexpr Code kIpv{kCvx, "10", "IPV"};
constexpr Code kMmr{kCvx, "03", "MMR"};
constexpr Code kVaricella{kCvx, "21", "varicella"};
constexpr Code kHepA{kCvx, "83", "Hep A, ped/adol, 2 dose"};
constexpr Code kTdap{kCvx, "115", "Tdap"};
constexpr Code kHpv{kCvx, "62", "HPV, quadrivalent"};
constexpr Code kMeningococcal{kCvx, "114", "meningococcal MCV4P"};

constexpr ScheduledDose kSchedule[] = {
    {kHepB, 0},           {kHepB, 30},
    {kRotavirus, 61},     {kDtap, 61},
    {kHib, 61},           {kPcv13Vaccine, 61},
    {kIpv, 61},           {kRotavirus, 122},
    {kDtap, 122},         {kHib, 122},
    {kPcv13Vaccine, 122}, {kIpv, 122},
    {kHepB, 183},         {kDtap, 183},
    {kPcv13Vaccine, 183}, {kIpv, 183},
    {kHib, 365},          {kPcv13Vaccine, 365},
    {kMmr, 365},          {kVaricella, 365},
    {kHepA, 365},         {kDtap, 457},
    {kHepA, 548},         {kDtap, 1461},
    {kIpv, 1461},         {kMmr, 1461},
    {kVaricella, 1461},   {kTdap, 4018},
    {kHpv, 4018},         {kMeningococcal, 4018},
    {kHpv, 4383},         {kMeningococcal, 5844},
};

// ---- Allergies --------------------------------------------------------------------------------

constexpr Code kAnaphylaxis{kSnomed, "39579001", "Anaphylaxis (disorder)"};
constexpr Code kHives{kSnomed, "247472004", "Wheal (finding)"};
constexpr Code kSkinEruption{kSnomed, "271807003", "Eruption of skin (disorder)"};
constexpr Code kNasalCongestion{kSnomed, "68235000", "Nasal congestion (finding)"};
constexpr Code kCough{kSnomed, "49727002", "Cough (finding)"};

constexpr AllergyDef kAllergies[] = {
    {{kSnomed, "91935009", "Allergy to peanuts (finding)"},
     "food",
     "high",
     kAnaphylaxis,
     "severe",
     1,
     5,
     1.0,
     true},
    {{kSnomed, "91934008", "Allergy to nut (finding)"},
     "food",
     "high",
     kHives,
     "moderate",
     1,
     8,
     0.6,
     true},
    {{kSnomed, "91930004", "Allergy to eggs (finding)"},
     "food",
     "low",
     kSkinEruption,
     "mild",
     0,
     3,
     0.5,
     false},
    {{kSnomed, "417532002", "Allergy to fish (finding)"},
     "food",
     "high",
     kHives,
     "moderate",
     2,
     30,
     0.4,
     false},
    {{kSnomed, "300913006", "Shellfish allergy (finding)"},
     "food",
     "high",
     kHives,
     "moderate",
     5,
     40,
     0.6,
     false},
    {{kSnomed, "420174000", "Allergy to wheat (finding)"},
     "food",
     "low",
     kSkinEruption,
     "mild",
     0,
     10,
     0.3,
     false},
    {{kSnomed, "300916003", "Latex allergy (finding)"},
     "environment",
     "low",
     kHives,
     "mild",
     10,
     50,
     0.3,
     false},
    {{kSnomed, "424213003", "Allergy to bee venom (finding)"},
     "environment",
     "high",
     kAnaphylaxis,
     "severe",
     3,
     60,
     0.4,
     true},
    {{kSnomed, "418689008", "Allergy to grass pollen (finding)"},
     "environment",
     "low",
     kNasalCongestion,
     "mild",
     3,
     30,
     1.2,
     false},
    {{kSnomed, "419263009", "Allergy to tree pollen (finding)"},
     "environment",
     "low",
     kNasalCongestion,
     "mild",
     3,
     30,
     1.0,
     false},
    {{kSnomed, "232350006", "House dust mite allergy (finding)"},
     "environment",
     "low",
     kCough,
     "mild",
     2,
     30,
     1.0,
     false},
    {{kSnomed, "232347008", "Dander (animal) allergy (finding)"},
     "environment",
     "low",
     kNasalCongestion,
     "mild",
     2,
     40,
     0.8,
     false},
    {{kSnomed, "419474003", "Allergy to mould (finding)"},
     "environment",
     "low",
     kCough,
     "mild",
     2,
     40,
     0.7,
     false},
    {{kSnomed, "91936005", "Allergy to penicillin (finding)"},
     "medication",
     "high",
     kHives,
     "moderate",
     1,
     60,
     1.0,
     false},
};

// ---- Names ------------------------------------------------------------------------------------

constexpr std::string_view kUsMale[] = {
    "James",  "John",    "Robert", "Michael", "William", "David",   "Richard", "Joseph",
    "Thomas", "Charles", "Daniel", "Matthew", "Anthony", "Mark",    "Steven",  "Andrew",
    "Joshua", "Kevin",   "Brian",  "Ryan",    "Tyler",   "Ethan",   "Noah",    "Liam",
    "Owen",   "Caleb",   "Wyatt",  "Henry",   "Jack",    "Gregory", "Dennis",  "Walter"};
constexpr std::string_view kUsFemale[] = {
    "Mary",    "Patricia", "Jennifer", "Linda",  "Elizabeth", "Barbara", "Susan",   "Jessica",
    "Sarah",   "Karen",    "Nancy",    "Lisa",   "Margaret",  "Emily",   "Emma",    "Olivia",
    "Hannah",  "Madison",  "Abigail",  "Grace",  "Ashley",    "Amanda",  "Rebecca", "Laura",
    "Heather", "Megan",    "Brittany", "Claire", "Dorothy",   "Joan",    "Evelyn",  "Harper"};
constexpr std::string_view kUsFamily[] = {
    "Smith",    "Johnson",  "Williams",   "Brown",    "Jones",    "Miller", "Davis",    "Wilson",
    "Anderson", "Taylor",   "Moore",      "Martin",   "Thompson", "White",  "Clark",    "Lewis",
    "Walker",   "Hall",     "Young",      "Allen",    "King",     "Wright", "Scott",    "Baker",
    "Adams",    "Nelson",   "Hill",       "Campbell", "Mitchell", "Carter", "Phillips", "Evans",
    "Turner",   "Parker",   "Collins",    "Edwards",  "Stewart",  "Murphy", "Cook",     "Rogers",
    "Morgan",   "Cooper",   "Peterson",   "Reed",     "Bailey",   "Kelly",  "Howard",   "O'Brien",
    "Sullivan", "McCarthy", "Fitzgerald", "Gallagher"};

constexpr std::string_view kAfricanAmericanMale[] = {
    "Darnell", "Jamal",  "Andre",  "Marcus", "Terrence", "Malik",  "DeShawn", "Isaiah",
    "Elijah",  "Jaylen", "Tyrone", "Cedric", "Reginald", "Xavier", "Darius",  "Jerome"};
constexpr std::string_view kAfricanAmericanFemale[] = {
    "Aaliyah", "Imani",   "Keisha",  "Latoya", "Ebony",  "Jasmine", "Destiny", "Nia",
    "Tiana",   "Shanice", "Monique", "Denise", "Yvonne", "Kiara",   "Aliyah",  "Brianna"};
constexpr std::string_view kAfricanAmericanFamily[] = {
    "Washington", "Jefferson", "Jackson",  "Robinson", "Harris",    "Coleman", "Banks",
    "Brooks",     "Freeman",   "Simmons",  "Gaines",   "Dixon",     "Mosley",  "Bryant",
    "Jenkins",    "Booker",    "Holloway", "Hairston", "Toussaint", "Okafor"};

constexpr std::string_view kHispanicMale[] = {
    "José",  "Luis",     "Carlos", "Juan",   "Miguel", "Jesús",  "Alejandro", "Diego",
    "Mateo", "Santiago", "Andrés", "Javier", "Ramón",  "Héctor", "Rafael",    "Óscar"};
constexpr std::string_view kHispanicFemale[] = {
    "María", "Guadalupe", "Sofía",  "Isabella", "Camila",  "Valentina", "Lucía", "Ximena",
    "Ana",   "Rosa",      "Mónica", "Verónica", "Daniela", "Alejandra", "Inés",  "Beatriz"};
constexpr std::string_view kHispanicFamily[] = {
    "García",  "Rodríguez", "Martínez", "Hernández", "López",    "González", "Pérez", "Sánchez",
    "Ramírez", "Torres",    "Flores",   "Rivera",    "Gómez",    "Díaz",     "Cruz",  "Morales",
    "Reyes",   "Gutiérrez", "Ortiz",    "Peña",      "Castillo", "Núñez",    "Muñoz", "Vargas"};

constexpr std::string_view kEastAsianMale[] = {"Wei",   "Jun",  "Hao",      "Min-jun", "Hiroshi",
                                               "Kenji", "Jian", "Tae-yang", "Sung-ho", "Takumi"};
constexpr std::string_view kEastAsianFemale[] = {"Mei",  "Xiu",    "Li",   "Yuna",    "Ji-woo",
                                                 "Yuki", "Sakura", "Hana", "Min-seo", "Xinyi"};
constexpr std::string_view kEastAsianFamily[] = {
    "Wang", "Li",  "Zhang", "Liu",    "Chen",   "Yang",     "Huang",    "Kim",
    "Park", "Lee", "Choi",  "Tanaka", "Suzuki", "Nakamura", "Watanabe", "Zhou"};

constexpr std::string_view kSouthAsianMale[] = {"Arjun", "Rahul",  "Vikram", "Sanjay",
                                                "Rohan", "Aditya", "Imran",  "Karan"};
constexpr std::string_view kSouthAsianFemale[] = {"Priya",  "Ananya", "Deepa", "Kavya",
                                                  "Sunita", "Aisha",  "Meera", "Nisha"};
constexpr std::string_view kSouthAsianFamily[] = {"Patel",  "Shah",  "Singh", "Kumar", "Gupta",
                                                  "Sharma", "Reddy", "Iyer",  "Desai", "Mehta"};

constexpr std::string_view kVietnameseMale[] = {"Minh", "Huy", "Tuấn", "Quang", "Long", "Đức"};
constexpr std::string_view kVietnameseFemale[] = {"Linh", "Thảo", "Ngọc", "Hương", "Mai", "Trang"};
constexpr std::string_view kVietnameseFamily[] = {"Nguyễn", "Trần", "Lê",   "Phạm",
                                                  "Hoàng",  "Võ",   "Đặng", "Bùi"};

constexpr std::string_view kEuropeanMale[] = {
    "François", "Björn", "Søren", "Jürgen", "Łukasz",   "Matteo", "João",   "Seán",
    "Pierre",   "Klaus", "Lars",  "Piotr",  "Giovanni", "Tomás",  "Henrik", "Mathieu"};
constexpr std::string_view kEuropeanFemale[] = {
    "Zoë", "Chloé",  "Renée",     "Ingrid",    "Małgorzata", "Giulia", "Inês", "Siobhán",
    "Åsa", "Hélène", "Agnieszka", "Francesca", "Margit",     "Léa",    "Maja", "Aoife"};
constexpr std::string_view kEuropeanFamily[] = {
    "Müller",    "Schröder", "Dubois",     "Lefèvre",   "Nowak",       "Kowalski", "Rossi",
    "Esposito",  "Ferreira", "Gonçalves",  "Andersson", "Søndergaard", "O'Connor", "Novák",
    "Lindqvist", "Fontaine", "Wiśniewski", "Bianchi",   "Keller",      "Brennan"};

constexpr std::string_view kArabicMale[] = {"Omar", "Ahmed", "Youssef", "Karim", "Tariq", "Khalid"};
constexpr std::string_view kArabicFemale[] = {"Layla", "Fatima", "Noor", "Yasmin", "Rania", "Huda"};
constexpr std::string_view kArabicFamily[] = {"Haddad",  "Khalil", "Nasser", "Saleh",
                                              "Mansour", "Aziz",   "Hamdan", "Sabbagh"};

constexpr std::string_view kNativeFamily[] = {"Begay", "Yazzie",  "Tsosie",    "Benally",
                                              "Nez",   "Attakai", "Deschenie", "Harjo"};

constexpr std::string_view kPacificMale[] = {"Keoni", "Kai", "Makoa", "Sione", "Ikaika"};
constexpr std::string_view kPacificFemale[] = {"Leilani", "Malia", "Noelani", "Mele", "Kalani"};
constexpr std::string_view kPacificFamily[] = {"Kahale", "Akana",   "Kealoha",
                                               "Tupou",  "Faleolo", "Kamaka"};

constexpr Code kNoLanguage{};
constexpr Code kSpanish{kLanguageSystem, "es", "Spanish"};
constexpr Code kChinese{kLanguageSystem, "zh", "Chinese"};
constexpr Code kHindi{kLanguageSystem, "hi", "Hindi"};
constexpr Code kVietnamese{kLanguageSystem, "vi", "Vietnamese"};
constexpr Code kPortuguese{kLanguageSystem, "pt", "Portuguese"};
constexpr Code kArabic{kLanguageSystem, "ar", "Arabic"};

constexpr Origin kOrigins[] = {
    {42.0, kUsMale, kUsFemale, kUsFamily, kRaceWhite, false, kNoLanguage, 0},
    {13.0, kAfricanAmericanMale, kAfricanAmericanFemale, kAfricanAmericanFamily, kRaceBlack, false,
     kNoLanguage, 0},
    {18.5, kHispanicMale, kHispanicFemale, kHispanicFamily, kRaceWhite, true, kSpanish, 0.3},
    {3.5, kEastAsianMale, kEastAsianFemale, kEastAsianFamily, kRaceAsian, false, kChinese, 0.15},
    {2.0, kSouthAsianMale, kSouthAsianFemale, kSouthAsianFamily, kRaceAsian, false, kHindi, 0.08},
    {1.0, kVietnameseMale, kVietnameseFemale, kVietnameseFamily, kRaceAsian, false, kVietnamese,
     0.35},
    {15.0, kEuropeanMale, kEuropeanFemale, kEuropeanFamily, kRaceWhite, false, kPortuguese, 0.03},
    {1.5, kArabicMale, kArabicFemale, kArabicFamily, kRaceWhite, false, kArabic, 0.2},
    {1.2, kUsMale, kUsFemale, kNativeFamily, kRaceNative, false, kNoLanguage, 0},
    {0.3, kPacificMale, kPacificFemale, kPacificFamily, kRacePacific, false, kNoLanguage, 0},
};

// ---- Places -----------------------------------------------------------------------------------

constexpr Town kTowns[] = {
    {"Boston", "MA", "02118", "617"},      {"Cambridge", "MA", "02139", "617"},
    {"Somerville", "MA", "02144", "617"},  {"Worcester", "MA", "01609", "508"},
    {"Springfield", "MA", "01103", "413"}, {"Lowell", "MA", "01852", "978"},
    {"Quincy", "MA", "02169", "617"},      {"Brockton", "MA", "02301", "508"},
    {"Lynn", "MA", "01902", "781"},        {"New Bedford", "MA", "02740", "508"},
    {"Newton", "MA", "02458", "617"},      {"Framingham", "MA", "01701", "508"},
    {"Salem", "MA", "01970", "978"},       {"Pittsfield", "MA", "01201", "413"},
    {"Providence", "RI", "02903", "401"},  {"Warwick", "RI", "02886", "401"},
    {"Cranston", "RI", "02910", "401"},    {"Pawtucket", "RI", "02860", "401"},
    {"Manchester", "NH", "03101", "603"},  {"Nashua", "NH", "03060", "603"},
    {"Concord", "NH", "03301", "603"},     {"Portsmouth", "NH", "03801", "603"},
    {"Hartford", "CT", "06103", "860"},    {"New Haven", "CT", "06511", "203"},
    {"Stamford", "CT", "06901", "203"},    {"Bridgeport", "CT", "06604", "203"},
};

constexpr std::string_view kStreets[] = {
    "Main Street",     "Maple Avenue",     "Oak Street",      "Elm Street",     "Washington Street",
    "Park Avenue",     "Pleasant Street",  "High Street",     "Cedar Lane",     "Chestnut Street",
    "Lincoln Road",    "Highland Avenue",  "School Street",   "Church Street",  "Summer Street",
    "Franklin Street", "Prospect Street",  "Spring Street",   "Union Street",   "Water Street",
    "Mill Road",       "Hillside Avenue",  "Forest Road",     "Lakeview Drive", "Orchard Lane",
    "Beacon Street",   "Harbor View Road", "Birch Hill Road", "Walnut Street",  "Riverside Drive"};

constexpr double kAgeBands[] = {5.7, 6.0, 6.4, 6.5, 6.4, 6.8, 6.9, 6.6, 6.3, 6.0,
                                6.2, 6.4, 6.3, 5.4, 4.3, 2.9, 1.9, 1.2, 0.6};

// Growth: approximate medians of the CDC growth charts, then adult values.
constexpr CurvePoint kHeightMale[] = {
    C{0, 49.9},   C{0.5, 67.6}, C{1, 75.7},   C{1.5, 82.3}, C{2, 87.1},   C{3, 95.2},
    C{4, 102.5},  C{5, 109.2},  C{6, 115.5},  C{7, 121.9},  C{8, 128.0},  C{9, 133.3},
    C{10, 138.4}, C{11, 143.5}, C{12, 149.1}, C{13, 156.2}, C{14, 163.2}, C{15, 169.0},
    C{16, 172.9}, C{17, 175.2}, C{18, 176.1}, C{20, 176.8}, C{55, 176.8}, C{95, 171.0}};
constexpr CurvePoint kHeightFemale[] = {
    C{0, 49.1},   C{0.5, 65.7}, C{1, 74.0},   C{1.5, 80.7}, C{2, 85.7},   C{3, 94.1},
    C{4, 101.6},  C{5, 108.4},  C{6, 115.0},  C{7, 121.1},  C{8, 127.0},  C{9, 132.6},
    C{10, 138.4}, C{11, 144.8}, C{12, 151.1}, C{13, 156.4}, C{14, 159.8}, C{15, 161.7},
    C{16, 162.5}, C{17, 163.0}, C{18, 163.2}, C{20, 163.3}, C{55, 163.3}, C{95, 157.0}};
constexpr CurvePoint kBmiMale[] = {
    C{0, 13.3},  C{0.5, 17.3}, C{1, 17.2},  C{2, 16.5},  C{3, 16.0},  C{4, 15.7},  C{5, 15.5},
    C{6, 15.4},  C{7, 15.5},   C{8, 15.8},  C{9, 16.2},  C{10, 16.6}, C{11, 17.2}, C{12, 17.8},
    C{13, 18.5}, C{14, 19.2},  C{15, 19.8}, C{16, 20.5}, C{17, 21.1}, C{18, 21.7}, C{20, 22.6},
    C{25, 25.0}, C{35, 27.0},  C{50, 28.2}, C{65, 28.0}, C{80, 26.5}, C{95, 25.0}};
constexpr CurvePoint kBmiFemale[] = {
    C{0, 13.3},  C{0.5, 16.8}, C{1, 16.7},  C{2, 16.1},  C{3, 15.6},  C{4, 15.4},  C{5, 15.2},
    C{6, 15.2},  C{7, 15.4},   C{8, 15.8},  C{9, 16.3},  C{10, 16.9}, C{11, 17.5}, C{12, 18.1},
    C{13, 18.7}, C{14, 19.4},  C{15, 19.9}, C{16, 20.4}, C{17, 20.8}, C{18, 21.3}, C{20, 21.7},
    C{25, 24.5}, C{35, 26.8},  C{50, 28.3}, C{65, 28.5}, C{80, 27.0}, C{95, 25.0}};

}  // namespace

std::span<const ChronicDef> ChronicConditions() { return kChronic; }
std::span<const AcuteDef> AcuteConditions() { return kAcute; }
std::span<const AdmissionDef> Admissions() { return kAdmissions; }
std::span<const ScheduledDose> ChildhoodSchedule() { return kSchedule; }
std::span<const AllergyDef> Allergies() { return kAllergies; }
std::span<const Origin> Origins() { return kOrigins; }
std::span<const Town> Towns() { return kTowns; }
std::span<const std::string_view> Streets() { return kStreets; }
std::span<const double> AgeBandWeights() { return kAgeBands; }

double Interpolate(std::span<const CurvePoint> curve, double x) {
  if (x <= curve.front().x) return curve.front().y;
  for (size_t i = 1; i < curve.size(); ++i) {
    if (x <= curve[i].x) {
      const CurvePoint& a = curve[i - 1];
      const CurvePoint& b = curve[i];
      return a.y + (b.y - a.y) * (x - a.x) / (b.x - a.x);
    }
  }
  return curve.back().y;
}

double MedianHeight(bool female, double age) {
  return Interpolate(female ? std::span<const CurvePoint>(kHeightFemale) : kHeightMale, age);
}

double MedianBmi(bool female, double age) {
  return Interpolate(female ? std::span<const CurvePoint>(kBmiFemale) : kBmiMale, age);
}

}  // namespace fhirstone::generate::internal
