#include "fhirpath/fhirpath.h"

#include <utility>

#include "fhir/primitives.h"
#include "fhirpath/internal/eval.h"
#include "fhirpath/internal/parser.h"

namespace fhirstone::fhirpath {
namespace {

using internal::Coll;
using internal::SysType;
using internal::Val;

// The FHIR type name of an element whose type the model does not know: by its JSON value.
std::string InferredTypeName(const json::Value* node) {
  if (node == nullptr) return "";
  if (node->is_bool()) return "boolean";
  if (node->is_string()) return "string";
  if (node->is_number()) return internal::ParseInteger(node->as_string()) ? "integer" : "decimal";
  return "";
}

Item ToItem(Val&& v) {
  Item item;
  if (v.is_node()) {
    item.node = v.node != nullptr && !v.node->is_null() ? v.node : nullptr;
    item.extension_node = v.ext;
    item.type = v.fhir != nullptr ? std::string(v.fhir->name) : InferredTypeName(v.node);
    return item;
  }
  item.type = std::string(internal::SysTypeName(v.type));
  switch (v.type) {
    case SysType::kBoolean:
      item.value = json::Value(v.b);
      break;
    case SysType::kInteger:
      item.value = json::Value::Number(v.i);
      break;
    case SysType::kDecimal:
    case SysType::kQuantity: {
      std::string_view text = v.Text();
      item.value = fhir::IsValidDecimal(text)
                       ? json::Value::NumberText(std::string(text))
                       : json::Value::NumberText(internal::FormatDecimal(v.d));
      item.unit = std::move(v.unit);
      break;
    }
    default:
      item.value =
          v.text_ref != nullptr ? json::Value(*v.text_ref) : json::Value(std::move(v.text));
      break;
  }
  return item;
}

class ExpressionImpl : public Expression {
 public:
  explicit ExpressionImpl(internal::Program program) : program_(std::move(program)) {}

  const std::string& text() const override { return program_.text; }

  Result<Collection> Evaluate(const json::Value& resource,
                              const EvalOptions& options) const override {
    Val root = Val::Node(&resource, nullptr, internal::ResourceTypeOf(resource));
    Coll context{root};
    return Run(std::move(context), options, std::move(root));
  }

  Result<Collection> EvaluateItems(const Collection& input,
                                   const EvalOptions& options) const override {
    Coll context;
    context.reserve(input.size());
    for (const Item& item : input) {
      Result<Val> v = internal::ItemToVal(item);
      if (!v) return std::move(v).error();
      context.push_back(std::move(*v));
    }
    Val resource;
    if (options.root_resource == nullptr && context.size() == 1) resource = context[0];
    return Run(std::move(context), options, std::move(resource));
  }

 private:
  Result<Collection> Run(Coll context, const EvalOptions& options, Val resource) const {
    if (options.root_resource != nullptr) {
      resource = Val::Node(options.root_resource, nullptr,
                           internal::ResourceTypeOf(*options.root_resource));
    }
    internal::Evaluator evaluator(program_, options, std::move(resource));
    Result<Coll> result = evaluator.Run(std::move(context));
    if (!result) return std::move(result).error();
    Collection out;
    out.reserve(result->size());
    for (Val& v : *result) out.push_back(ToItem(std::move(v)));
    return out;
  }

  internal::Program program_;
};

}  // namespace

Result<std::unique_ptr<const Expression>> Compile(std::string_view text) {
  Result<internal::Program> program = internal::Parse(text);
  if (!program) return std::move(program).error();
  return std::unique_ptr<const Expression>(new ExpressionImpl(std::move(*program)));
}

std::optional<bool> AsBoolean(const Collection& c) {
  if (c.size() != 1) return std::nullopt;
  const Item& item = c[0];
  if (item.value && item.value->is_bool()) return item.value->as_bool();
  if (item.node != nullptr && item.node->is_bool()) return item.node->as_bool();
  return true;
}

}  // namespace fhirstone::fhirpath
