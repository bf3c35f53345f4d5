#include "search/ucum.h"

#include <array>
#include <utility>

namespace fhirstone::search {

std::optional<UcumCanonical> UcumCanonicalOf(std::string_view code) {
  struct Unit {
    std::string_view code;
    UcumCanonical canonical;
  };
  static constexpr std::array kUnits = {
      // Mass.
      Unit{"kg", {"g", 1e3}}, Unit{"g", {"g", 1}}, Unit{"mg", {"g", 1e-3}}, Unit{"ug", {"g", 1e-6}},
      Unit{"ng", {"g", 1e-9}}, Unit{"pg", {"g", 1e-12}}, Unit{"[lb_av]", {"g", 453.59237}},
      Unit{"[oz_av]", {"g", 28.349523125}},
      // Length.
      Unit{"km", {"m", 1e3}}, Unit{"m", {"m", 1}}, Unit{"cm", {"m", 1e-2}}, Unit{"mm", {"m", 1e-3}},
      Unit{"um", {"m", 1e-6}}, Unit{"[in_i]", {"m", 0.0254}}, Unit{"[ft_i]", {"m", 0.3048}},
      // Volume (UCUM has L and l for the litre).
      Unit{"L", {"L", 1}}, Unit{"l", {"L", 1}}, Unit{"dL", {"L", 1e-1}}, Unit{"dl", {"L", 1e-1}},
      Unit{"mL", {"L", 1e-3}}, Unit{"ml", {"L", 1e-3}}, Unit{"uL", {"L", 1e-6}},
      Unit{"ul", {"L", 1e-6}},
      // Time.
      Unit{"s", {"s", 1}}, Unit{"ms", {"s", 1e-3}}, Unit{"min", {"s", 60}}, Unit{"h", {"s", 3600}},
      Unit{"d", {"s", 86400}}, Unit{"wk", {"s", 604800}},
      // Mass concentration.
      Unit{"g/L", {"g/L", 1}}, Unit{"g/dL", {"g/L", 10}}, Unit{"mg/dL", {"g/L", 1e-2}},
      Unit{"mg/L", {"g/L", 1e-3}}, Unit{"ug/mL", {"g/L", 1e-3}}, Unit{"ug/L", {"g/L", 1e-6}},
      Unit{"ng/mL", {"g/L", 1e-6}}, Unit{"ug/dL", {"g/L", 1e-5}}, Unit{"pg/mL", {"g/L", 1e-9}},
      Unit{"g/l", {"g/L", 1}}, Unit{"g/dl", {"g/L", 10}}, Unit{"mg/dl", {"g/L", 1e-2}},
      Unit{"mg/l", {"g/L", 1e-3}}, Unit{"ug/ml", {"g/L", 1e-3}}, Unit{"ug/l", {"g/L", 1e-6}},
      Unit{"ng/ml", {"g/L", 1e-6}}, Unit{"ug/dl", {"g/L", 1e-5}}, Unit{"pg/ml", {"g/L", 1e-9}},
      // Substance concentration.
      Unit{"mol/L", {"mol/L", 1}}, Unit{"mmol/L", {"mol/L", 1e-3}}, Unit{"umol/L", {"mol/L", 1e-6}},
      Unit{"nmol/L", {"mol/L", 1e-9}}, Unit{"pmol/L", {"mol/L", 1e-12}},
      // Pressure.
      Unit{"Pa", {"Pa", 1}}, Unit{"kPa", {"Pa", 1e3}}, Unit{"mm[Hg]", {"Pa", 133.322}},
      Unit{"bar", {"Pa", 1e5}}};
  for (const Unit& u : kUnits)
    if (u.code == code) return u.canonical;
  return std::nullopt;
}

}  // namespace fhirstone::search
