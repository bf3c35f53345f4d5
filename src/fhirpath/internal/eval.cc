#include "fhirpath/internal/eval.h"

#include <cmath>
#include <utility>

namespace fhirstone::fhirpath::internal {
namespace {

bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }

// The `_name` member of `obj`, without building the key.
const json::Value* FindCompanion(const json::Value& obj, std::string_view name) {
  for (const json::Member& m : obj.as_object()) {
    const std::string& k = m.first;
    if (k.size() == name.size() + 1 && k[0] == '_' && std::string_view(k).substr(1) == name) {
      return &m.second;
    }
  }
  return nullptr;
}

// The concrete type of a node whose declared type is `declared`: resources inside contained,
// Bundle.entry.resource... take their type from resourceType.
const fhir::StructureInfo* Concrete(const fhir::StructureInfo* declared, const json::Value& node) {
  if ((declared == nullptr || (declared->is_resource() && declared->is_abstract)) &&
      node.is_object()) {
    if (const fhir::StructureInfo* t = ResourceTypeOf(node)) return t;
  }
  return declared;
}

// Appends the items of a JSON member (`value`, may be an array) and its companion.
void AddJson(const json::Value* value, const json::Value* companion,
             const fhir::StructureInfo* type, Coll& out) {
  if (value != nullptr && value->is_array()) {
    const json::Array& items = value->as_array();
    const json::Array* extras =
        companion != nullptr && companion->is_array() ? &companion->as_array() : nullptr;
    for (size_t i = 0; i < items.size(); ++i) {
      const json::Value* extra = nullptr;
      if (extras != nullptr && i < extras->size() && (*extras)[i].is_object()) {
        extra = &(*extras)[i];
      }
      if (items[i].is_null()) {
        if (extra != nullptr) out.push_back(Val::Node(nullptr, extra, type));
        continue;
      }
      out.push_back(Val::Node(&items[i], extra, Concrete(type, items[i])));
    }
    return;
  }
  if (value != nullptr && !value->is_null()) {
    const json::Value* extra = companion != nullptr && companion->is_object() ? companion : nullptr;
    out.push_back(Val::Node(value, extra, Concrete(type, *value)));
    return;
  }
  if (companion == nullptr) return;
  if (companion->is_array()) {
    for (const json::Value& extra : companion->as_array()) {
      if (extra.is_object()) out.push_back(Val::Node(nullptr, &extra, type));
    }
  } else if (companion->is_object()) {
    out.push_back(Val::Node(nullptr, companion, type));
  }
}

bool IsTypeName(std::string_view name) {
  return !name.empty() && IsUpper(name[0]) && name.find('.') == std::string_view::npos &&
         fhir::FindStructure(name) != nullptr;
}

}  // namespace

const fhir::StructureInfo* ResourceTypeOf(const json::Value& resource) {
  if (!resource.is_object()) return nullptr;
  return fhir::FindResourceType(resource.GetString("resourceType"));
}

Result<Val> ItemToVal(const Item& item) {
  if (item.node != nullptr || item.extension_node != nullptr) {
    const fhir::StructureInfo* type = item.type.empty() ? nullptr : fhir::FindStructure(item.type);
    if (type == nullptr && !item.type.empty()) {
      return Error::Invalid("FHIRPath: unknown type '" + item.type + "' of an input item");
    }
    if (type == nullptr && item.node != nullptr) type = ResourceTypeOf(*item.node);
    return Val::Node(item.node, item.extension_node, type);
  }
  if (!item.value) return Error::Invalid("FHIRPath: an input item has neither node nor value");
  const json::Value& v = *item.value;
  std::string_view t = item.type;
  if (t.substr(0, 7) == "System.") t = t.substr(7);
  std::optional<SysType> sys = SysTypeFromName(t);
  if (!sys) return Error::Invalid("FHIRPath: unknown type '" + item.type + "' of an input item");
  switch (*sys) {
    case SysType::kBoolean:
      if (v.is_bool()) return Val::Boolean(v.as_bool());
      break;
    case SysType::kInteger:
      if (v.is_number()) {
        if (auto i = ParseInteger(v.as_string())) return Val::Integer(*i);
      }
      break;
    case SysType::kDecimal:
    case SysType::kQuantity:
      if (v.is_number()) {
        if (auto d = ParseDecimal(v.as_string())) {
          return *sys == SysType::kDecimal ? Val::Decimal(*d, v.as_string())
                                           : Val::Quantity(*d, v.as_string(), item.unit);
        }
      }
      break;
    case SysType::kString:
      if (v.is_string()) return Val::String(v.as_string());
      break;
    default:
      if (v.is_string() && ParseTemporal(*sys, v.as_string())) {
        return Val::Temporal(*sys, v.as_string());
      }
      break;
  }
  return Error::Invalid("FHIRPath: an input item's value does not match its type " + item.type);
}

Evaluator::Evaluator(const Program& program, const EvalOptions& options, Val resource)
    : p_(program),
      options_(options),
      resource_(std::move(resource)),
      steps_left_(options.max_steps) {}

Result<Coll> Evaluator::Run(Coll context) {
  context_ = std::move(context);
  Env env;
  env.focus = context_;
  return Eval(p_.root, env);
}

Error Evaluator::Fail(const Node& n, std::string_view message) const {
  return Error::Invalid(
      "FHIRPath: " + std::string(message) + " at position " + std::to_string(n.pos), p_.text);
}

Status Evaluator::ChargeQuadratic(const Node& n, size_t a, size_t b) {
  return Charge(n, static_cast<uint64_t>(a) * b / 8 + 1);
}

Status Evaluator::Charge(const Node& n, uint64_t steps) {
  if (steps > steps_left_) {
    steps_left_ = 0;
    return Fail(n, "evaluation exceeds its work limit");
  }
  steps_left_ -= steps;
  return Ok();
}

Result<Coll> Evaluator::Eval(int32_t index, const Env& env) {
  const Node& n = p_.nodes[index];
  Result<Coll> result = Coll();
  switch (n.kind) {
    case NodeKind::kEmpty:
      break;
    case NodeKind::kLiteral: {
      const Val& lit = p_.literals[n.data];
      Val v;
      v.type = lit.type;
      v.b = lit.b;
      v.i = lit.i;
      v.d = lit.d;
      v.text_ref = &lit.text;
      v.unit = lit.unit;
      result->push_back(std::move(v));
      break;
    }
    case NodeKind::kThis:
      result->assign(env.focus.begin(), env.focus.end());
      break;
    case NodeKind::kIndex:
      if (env.index >= 0) result->push_back(Val::Integer(env.index));
      break;
    case NodeKind::kTotal:
      if (env.total != nullptr) *result = *env.total;
      break;
    case NodeKind::kVariable:
      result = EvalVariable(n);
      break;
    case NodeKind::kMember:
      result = EvalMember(n, env);
      break;
    case NodeKind::kFunction:
      result = EvalFunction(n, env);
      break;
    case NodeKind::kIndexer: {
      Result<Coll> c = Eval(n.lhs, env);
      if (!c) return c;
      Result<Coll> i = Eval(n.rhs, env);
      if (!i) return i;
      Result<const Val*> idx = Single(n, *i);
      if (!idx) return std::move(idx).error();
      if (*idx == nullptr) break;
      Prim pi = GetPrim(**idx);
      if (pi.type != SysType::kInteger) return Fail(n, "an index must be an Integer");
      if (pi.i >= 0 && static_cast<uint64_t>(pi.i) < c->size()) {
        result->push_back(std::move((*c)[static_cast<size_t>(pi.i)]));
      }
      break;
    }
    case NodeKind::kNegate: {
      Result<Coll> c = Eval(n.lhs, env);
      if (!c) return c;
      Result<const Val*> v = Single(n, *c);
      if (!v) return std::move(v).error();
      if (*v == nullptr) break;
      Prim x = GetPrim(**v);
      if (x.type == SysType::kInteger) {
        if (x.i == INT64_MIN) break;
        result->push_back(Val::Integer(-x.i));
      } else if (x.type == SysType::kDecimal) {
        result->push_back(*Val::DecimalFrom(-x.d));
      } else if (x.type == SysType::kQuantity) {
        result->push_back(Val::Quantity(-x.d, FormatDecimal(-x.d), std::string(x.unit)));
      } else {
        return Fail(n, "unary '-' needs a number or a quantity");
      }
      break;
    }
    case NodeKind::kBinary:
      result = EvalBinary(n, env);
      break;
    case NodeKind::kIs:
    case NodeKind::kAs: {
      Result<Coll> c = Eval(n.lhs, env);
      if (!c) return c;
      const TypeSpec& type = p_.types[n.data];
      if (n.kind == NodeKind::kIs) {
        Result<const Val*> v = Single(n, *c);
        if (!v) return std::move(v).error();
        if (*v != nullptr) result->push_back(Val::Boolean(IsType(**v, type)));
      } else {
        // `as` keeps the items of the type (as ofType() does) rather than failing on several:
        // the R4 search parameters apply it to repeating elements (useContext.value as X).
        for (Val& v : *c) {
          if (IsType(v, type)) result->push_back(std::move(v));
        }
      }
      break;
    }
  }
  if (!result) return result;
  uint64_t steps = 1 + result->size();
  for (const Val& v : *result) {
    if (!v.is_node() && v.text_ref == nullptr) steps += v.text.size() / 64;
  }
  if (Status s = Charge(n, steps); !s) return std::move(s).error();
  return result;
}

Result<Coll> Evaluator::EvalVariable(const Node& n) {
  const std::string& name = p_.names[n.data];
  for (const auto& [var, items] : options_.variables) {
    if (var != name) continue;
    Coll out;
    for (const Item& item : items) {
      Result<Val> v = ItemToVal(item);
      if (!v) return Fail(n, "%" + name + ": " + v.error().message());
      out.push_back(std::move(*v));
    }
    return out;
  }
  Coll out;
  if (name == "context") return context_;
  if (name == "resource" || name == "rootResource") {
    if (resource_.node != nullptr) out.push_back(resource_);
    return out;
  }
  std::string_view s = name;
  if (s == "ucum") {
    out.push_back(Val::String("http://unitsofmeasure.org"));
  } else if (s == "sct") {
    out.push_back(Val::String("http://snomed.info/sct"));
  } else if (s == "loinc") {
    out.push_back(Val::String("http://loinc.org"));
  } else if (s.substr(0, 3) == "vs-") {
    out.push_back(Val::String("http://hl7.org/fhir/ValueSet/" + name.substr(3)));
  } else if (s.substr(0, 4) == "ext-") {
    out.push_back(Val::String("http://hl7.org/fhir/StructureDefinition/" + name.substr(4)));
  } else {
    return Fail(n, "undefined variable %" + name);
  }
  return out;
}

Result<Coll> Evaluator::EvalMember(const Node& n, const Env& env) {
  const std::string& name = p_.names[n.data];
  Coll out;
  if (n.lhs < 0) {
    // An identifier that starts an expression and names a type filters the focus by type:
    // "Patient.name" over an Observation is empty.
    if (IsTypeName(name)) {
      for (const Val& v : env.focus) {
        if (!v.is_node()) continue;
        if (DerivesFrom(v.fhir, name) ||
            (v.fhir == nullptr && v.node != nullptr && v.node->is_object() &&
             v.node->GetString("resourceType") == name)) {
          out.push_back(v);
        }
      }
      return out;
    }
    for (const Val& v : env.focus) Children(v, name, out);
    return out;
  }
  Result<Coll> input = Eval(n.lhs, env);
  if (!input) return input;
  for (const Val& v : *input) Children(v, name, out);
  return out;
}

void Evaluator::Children(const Val& v, std::string_view name, Coll& out) const {
  if (!v.is_node()) return;
  const fhir::StructureInfo* type = v.fhir;
  const json::Value* obj = type != nullptr && type->is_primitive() ? v.ext : v.node;
  if (obj == nullptr || !obj->is_object()) return;
  if (type == nullptr) {
    if (name.empty() || name[0] == '_') return;
    AddJson(obj->Find(name), FindCompanion(*obj, name), nullptr, out);
    return;
  }
  const fhir::ElementInfo* element = type->FindElement(name);
  if (element == nullptr) return;
  if (!element->is_choice) {
    const fhir::StructureInfo& t = element->type();
    AddJson(obj->Find(name), t.is_primitive() ? FindCompanion(*obj, name) : nullptr, &t, out);
    return;
  }
  // A choice element: every member valueX whose X is one of its types.
  for (const json::Member& m : obj->as_object()) {
    std::string_view key = m.first;
    bool companion = !key.empty() && key[0] == '_';
    std::string_view base = companion ? key.substr(1) : key;
    if (base.size() <= name.size() || base.substr(0, name.size()) != name ||
        !IsUpper(base[name.size()])) {
      continue;
    }
    fhir::ElementMatch match = type->Resolve(base);
    if (match.element != element) continue;
    if (companion) {
      if (obj->Find(base) == nullptr) AddJson(nullptr, &m.second, match.type, out);
      continue;
    }
    AddJson(&m.second, match.type->is_primitive() ? FindCompanion(*obj, key) : nullptr, match.type,
            out);
  }
}

void Evaluator::AllChildren(const Val& v, Coll& out) const {
  if (!v.is_node()) return;
  const fhir::StructureInfo* type = v.fhir;
  const json::Value* obj = type != nullptr && type->is_primitive() ? v.ext : v.node;
  if (obj == nullptr || !obj->is_object()) return;
  for (const json::Member& m : obj->as_object()) {
    std::string_view key = m.first;
    if (key == "resourceType") continue;
    bool companion = !key.empty() && key[0] == '_';
    std::string_view base = companion ? key.substr(1) : key;
    if (companion && obj->Find(base) != nullptr) continue;  // with its value
    const fhir::StructureInfo* child_type = nullptr;
    if (type != nullptr) {
      fhir::ElementMatch match = type->Resolve(base);
      if (!match) continue;
      child_type = match.type;
    }
    const json::Value* extra =
        companion ? &m.second
                  : (child_type == nullptr || child_type->is_primitive() ? FindCompanion(*obj, key)
                                                                         : nullptr);
    AddJson(companion ? nullptr : &m.second, extra, child_type, out);
  }
}

bool Evaluator::IsType(const Val& v, const TypeSpec& type) const {
  if (v.is_node()) return type.fhir != nullptr && DerivesFrom(v.fhir, type.fhir->name);
  return type.system != SysType::kNode && v.type == type.system;
}

bool Evaluator::ContainsEqual(std::span<const Val> c, const Val& v) const {
  for (const Val& x : c) {
    if (Equal(x, v).value_or(false)) return true;
  }
  return false;
}

void Evaluator::AddDistinct(std::span<const Val> items, Coll& out) const {
  for (const Val& v : items) {
    if (!ContainsEqual(out, v)) out.push_back(v);
  }
}

Result<const Val*> Evaluator::Single(const Node& n, std::span<const Val> c) {
  if (c.empty()) return static_cast<const Val*>(nullptr);
  if (c.size() > 1) return Fail(n, "expected a single item, found " + std::to_string(c.size()));
  return &c[0];
}

Result<std::optional<bool>> Evaluator::Truth(const Node& n, const Coll& c) {
  if (c.empty()) return std::optional<bool>();
  if (c.size() > 1) {
    return Fail(n, "expected a single Boolean, found " + std::to_string(c.size()) + " items");
  }
  Prim p = GetPrim(c[0]);
  return std::optional<bool>(p.type == SysType::kBoolean ? p.b : true);
}

Result<Coll> Evaluator::EvalLogic(const Node& n, const Env& env) {
  auto op = static_cast<BinaryOp>(n.op);
  Result<Coll> lc = Eval(n.lhs, env);
  if (!lc) return lc;
  Result<std::optional<bool>> l = Truth(n, *lc);
  if (!l) return std::move(l).error();
  Coll out;
  // Short cuts: the right side is not needed.
  if (op == BinaryOp::kAnd && *l == false) return Coll{Val::Boolean(false)};
  if (op == BinaryOp::kOr && *l == true) return Coll{Val::Boolean(true)};
  if (op == BinaryOp::kImplies && *l == false) return Coll{Val::Boolean(true)};
  Result<Coll> rc = Eval(n.rhs, env);
  if (!rc) return rc;
  Result<std::optional<bool>> r = Truth(n, *rc);
  if (!r) return std::move(r).error();
  std::optional<bool> a = *l, b = *r, v;
  switch (op) {
    case BinaryOp::kAnd:
      if (b == false) {
        v = false;
      } else if (a && b) {
        v = true;
      }
      break;
    case BinaryOp::kOr:
      if (b == true) {
        v = true;
      } else if (a && b) {
        v = false;
      }
      break;
    case BinaryOp::kXor:
      if (a && b) v = *a != *b;
      break;
    case BinaryOp::kImplies:
      if (b == true) {
        v = true;
      } else if (a && b) {
        v = false;  // a is true here
      }
      break;
    default:
      break;
  }
  if (v) out.push_back(Val::Boolean(*v));
  return out;
}

Result<Coll> Evaluator::EvalBinary(const Node& n, const Env& env) {
  auto op = static_cast<BinaryOp>(n.op);
  if (op == BinaryOp::kAnd || op == BinaryOp::kOr || op == BinaryOp::kXor ||
      op == BinaryOp::kImplies) {
    return EvalLogic(n, env);
  }
  Result<Coll> l = Eval(n.lhs, env);
  if (!l) return l;
  Result<Coll> r = Eval(n.rhs, env);
  if (!r) return r;
  Coll out;
  switch (op) {
    case BinaryOp::kUnion: {
      size_t total = l->size() + r->size();
      if (Status s = ChargeQuadratic(n, total, total); !s) return std::move(s).error();
      out.reserve(total);
      AddDistinct(*l, out);
      AddDistinct(*r, out);
      return out;
    }
    case BinaryOp::kEq:
    case BinaryOp::kNe: {
      if (l->empty() || r->empty()) return out;
      bool equal = l->size() == r->size();
      for (size_t i = 0; equal && i < l->size(); ++i) {
        std::optional<bool> e = Equal((*l)[i], (*r)[i]);
        if (!e) return out;
        equal = *e;
      }
      out.push_back(Val::Boolean(op == BinaryOp::kEq ? equal : !equal));
      return out;
    }
    case BinaryOp::kEquiv:
    case BinaryOp::kNotEquiv: {
      if (Status s = ChargeQuadratic(n, l->size(), r->size()); !s) return std::move(s).error();
      bool equivalent = l->size() == r->size();
      std::vector<bool> used(r->size());
      for (size_t i = 0; equivalent && i < l->size(); ++i) {
        bool found = false;
        for (size_t j = 0; j < r->size() && !found; ++j) {
          if (!used[j] && Equivalent((*l)[i], (*r)[j])) used[j] = found = true;
        }
        equivalent = found;
      }
      out.push_back(Val::Boolean(op == BinaryOp::kEquiv ? equivalent : !equivalent));
      return out;
    }
    case BinaryOp::kLt:
    case BinaryOp::kGt:
    case BinaryOp::kLe:
    case BinaryOp::kGe: {
      Result<const Val*> a = Single(n, *l);
      if (!a) return std::move(a).error();
      Result<const Val*> b = Single(n, *r);
      if (!b) return std::move(b).error();
      if (*a == nullptr || *b == nullptr) return out;
      Result<std::optional<int>> c = Compare(**a, **b);
      if (!c) return Fail(n, c.error().message());
      if (!*c) return out;
      int x = **c;
      bool v = op == BinaryOp::kLt   ? x < 0
               : op == BinaryOp::kGt ? x > 0
               : op == BinaryOp::kLe ? x <= 0
                                     : x >= 0;
      out.push_back(Val::Boolean(v));
      return out;
    }
    case BinaryOp::kIn:
    case BinaryOp::kContains: {
      const Coll& element = op == BinaryOp::kIn ? *l : *r;
      const Coll& collection = op == BinaryOp::kIn ? *r : *l;
      Result<const Val*> e = Single(n, element);
      if (!e) return std::move(e).error();
      if (*e == nullptr) return out;
      if (Status s = Charge(n, collection.size()); !s) return std::move(s).error();
      out.push_back(Val::Boolean(ContainsEqual(collection, **e)));
      return out;
    }
    case BinaryOp::kConcat: {
      std::string s;
      for (const Coll* side : {&*l, &*r}) {
        Result<const Val*> v = Single(n, *side);
        if (!v) return std::move(v).error();
        if (*v == nullptr) continue;
        Prim p = GetPrim(**v);
        if (p.type != SysType::kString) return Fail(n, "'&' needs strings");
        s += p.text;
      }
      if (s.size() > kMaxStringLength) return Fail(n, "string too long");
      out.push_back(Val::String(std::move(s)));
      return out;
    }
    default: {
      Result<const Val*> a = Single(n, *l);
      if (!a) return std::move(a).error();
      Result<const Val*> b = Single(n, *r);
      if (!b) return std::move(b).error();
      if (*a == nullptr || *b == nullptr) return out;
      return EvalArithmetic(n, **a, **b);
    }
  }
}

Result<Coll> Evaluator::EvalArithmetic(const Node& n, const Val& av, const Val& bv) {
  auto op = static_cast<BinaryOp>(n.op);
  Prim a = GetPrim(av), b = GetPrim(bv);
  Coll out;
  auto number = [](SysType t) { return t == SysType::kInteger || t == SysType::kDecimal; };
  auto push_decimal = [&out](double d) {
    if (auto v = Val::DecimalFrom(d)) out.push_back(std::move(*v));
  };
  if (a.type == SysType::kInteger && b.type == SysType::kInteger) {
    int64_t x = a.i, y = b.i, v = 0;
    bool overflow = false;
    switch (op) {
      case BinaryOp::kAdd:
        overflow = __builtin_add_overflow(x, y, &v);
        break;
      case BinaryOp::kSub:
        overflow = __builtin_sub_overflow(x, y, &v);
        break;
      case BinaryOp::kMul:
        overflow = __builtin_mul_overflow(x, y, &v);
        break;
      case BinaryOp::kDiv:
        if (y != 0) push_decimal(static_cast<double>(x) / static_cast<double>(y));
        return out;
      case BinaryOp::kIntDiv:
      case BinaryOp::kMod:
        if (y == 0 || (x == INT64_MIN && y == -1)) return out;
        v = op == BinaryOp::kIntDiv ? x / y : x % y;
        break;
      default:
        return Fail(n, "unsupported operator");
    }
    if (!overflow) out.push_back(Val::Integer(v));
    return out;
  }
  if (number(a.type) && number(b.type)) {
    double x = a.type == SysType::kInteger ? double(a.i) : a.d;
    double y = b.type == SysType::kInteger ? double(b.i) : b.d;
    switch (op) {
      case BinaryOp::kAdd:
        push_decimal(x + y);
        break;
      case BinaryOp::kSub:
        push_decimal(x - y);
        break;
      case BinaryOp::kMul:
        push_decimal(x * y);
        break;
      case BinaryOp::kDiv:
        if (y != 0) push_decimal(x / y);
        break;
      case BinaryOp::kIntDiv: {
        if (y == 0) break;
        double q = std::trunc(x / y);
        if (std::fabs(q) < 9.2e18) out.push_back(Val::Integer(static_cast<int64_t>(q)));
        break;
      }
      case BinaryOp::kMod:
        if (y != 0) push_decimal(std::fmod(x, y));
        break;
      default:
        return Fail(n, "unsupported operator");
    }
    return out;
  }
  if (a.type == SysType::kString && b.type == SysType::kString && op == BinaryOp::kAdd) {
    if (a.text.size() + b.text.size() > kMaxStringLength) return Fail(n, "string too long");
    std::string s(a.text);
    s += b.text;
    out.push_back(Val::String(std::move(s)));
    return out;
  }
  bool temporal =
      a.type == SysType::kDate || a.type == SysType::kDateTime || a.type == SysType::kTime;
  if (temporal && b.type == SysType::kQuantity && (op == BinaryOp::kAdd || op == BinaryOp::kSub)) {
    std::optional<DateTime> dt = ParseTemporal(a.type, a.text);
    if (!dt) return out;
    std::optional<DateTime> r = AddDuration(*dt, op == BinaryOp::kAdd ? b.d : -b.d, b.unit);
    if (!r) {
      if (AddDuration(*dt, 0, b.unit)) return out;  // out of range
      return Fail(n, "cannot add a quantity in '" + std::string(b.unit) + "' to a date/time");
    }
    out.push_back(Val::Temporal(a.type, FormatTemporal(a.type, *r)));
    return out;
  }
  if (a.type == SysType::kQuantity && b.type == SysType::kQuantity &&
      (op == BinaryOp::kAdd || op == BinaryOp::kSub)) {
    if (a.unit != b.unit) return out;
    double d = op == BinaryOp::kAdd ? a.d + b.d : a.d - b.d;
    if (std::isfinite(d)) out.push_back(Val::Quantity(d, FormatDecimal(d), std::string(a.unit)));
    return out;
  }
  if (((a.type == SysType::kQuantity && number(b.type)) ||
       (number(a.type) && b.type == SysType::kQuantity && op == BinaryOp::kMul)) &&
      (op == BinaryOp::kMul || op == BinaryOp::kDiv)) {
    const Prim& q = a.type == SysType::kQuantity ? a : b;
    const Prim& k = a.type == SysType::kQuantity ? b : a;
    double factor = k.type == SysType::kInteger ? double(k.i) : k.d;
    if (op == BinaryOp::kDiv && factor == 0) return out;
    double d = op == BinaryOp::kMul ? q.d * factor : q.d / factor;
    if (std::isfinite(d)) out.push_back(Val::Quantity(d, FormatDecimal(d), std::string(q.unit)));
    return out;
  }
  return Fail(n, "operator not defined for these operand types");
}

}  // namespace fhirstone::fhirpath::internal
