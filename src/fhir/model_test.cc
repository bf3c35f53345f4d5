#include "fhir/model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace fhirstone::fhir {
namespace {

TEST(ModelTest, ResourceTypes) {
  const auto& types = ResourceTypes();
  EXPECT_EQ(types.size(), 146u);
  EXPECT_TRUE(std::is_sorted(types.begin(), types.end()));
  for (const char* t : {"Patient", "Observation", "Bundle", "Parameters", "Binary"}) {
    EXPECT_TRUE(IsResourceType(t)) << t;
    EXPECT_NE(std::find(types.begin(), types.end(), t), types.end()) << t;
  }
  for (const char* t : {"Resource", "DomainResource", "HumanName", "string", "patient", ""})
    EXPECT_FALSE(IsResourceType(t)) << t;
  EXPECT_EQ(FhirVersion(), "4.0.1");
}

TEST(ModelTest, Structures) {
  const StructureInfo* patient = FindStructure("Patient");
  ASSERT_NE(patient, nullptr);
  EXPECT_EQ(patient->kind, StructureKind::kResource);
  EXPECT_EQ(patient->base, "DomainResource");
  EXPECT_FALSE(patient->is_abstract);
  EXPECT_EQ(&AllStructures()[patient->index], patient);

  const StructureInfo* resource = FindStructure("Resource");
  ASSERT_NE(resource, nullptr);
  EXPECT_TRUE(resource->is_abstract);
  EXPECT_EQ(FindResourceType("Resource"), nullptr);
  EXPECT_TRUE(FindStructure("DomainResource")->is_abstract);

  const StructureInfo* date = FindStructure("date");
  ASSERT_NE(date, nullptr);
  EXPECT_TRUE(date->is_primitive());
  EXPECT_EQ(date->primitive, PrimitiveType::kDate);
  EXPECT_EQ(date->elements.size(), 2u);  // id, extension; no "value"
  EXPECT_EQ(FindStructure("HumanName")->kind, StructureKind::kComplexType);
  EXPECT_EQ(FindStructure("NoSuchThing"), nullptr);
}

TEST(ModelTest, Elements) {
  const StructureInfo& patient = *FindStructure("Patient");
  const ElementInfo* name = patient.FindElement("name");
  ASSERT_NE(name, nullptr);
  EXPECT_TRUE(name->many);
  EXPECT_TRUE(name->is_summary);
  EXPECT_EQ(name->type().name, "HumanName");
  EXPECT_EQ(name->parent, &patient);
  EXPECT_EQ(&patient.elements[name->index], name);

  const ElementInfo* id = patient.FindElement("id");
  ASSERT_NE(id, nullptr);
  EXPECT_EQ(id->type().name, "id");  // Resource.id is an id, not a string
  EXPECT_EQ(patient.FindElement("active")->is_modifier, true);
  EXPECT_EQ(patient.FindElement("birthDate")->type().primitive, PrimitiveType::kDate);

  const ElementInfo* contact = patient.FindElement("contact");
  ASSERT_NE(contact, nullptr);
  EXPECT_EQ(contact->type().name, "Patient.contact");
  EXPECT_EQ(contact->type().kind, StructureKind::kBackboneElement);
  EXPECT_EQ(contact->type().base, "BackboneElement");
  EXPECT_NE(contact->type().FindElement("relationship"), nullptr);

  EXPECT_EQ(FindStructure("Element")->FindElement("id")->type().name, "string");
  EXPECT_EQ(FindStructure("Extension")->FindElement("url")->type().name, "uri");
  EXPECT_EQ(FindStructure("Extension")->FindElement("url")->min, 1);
  EXPECT_EQ(FindStructure("Narrative")->FindElement("div")->type().name, "xhtml");
  EXPECT_EQ(FindStructure("DomainResource")->FindElement("contained")->type().name, "Resource");
}

TEST(ModelTest, ChoiceElements) {
  const StructureInfo& obs = *FindStructure("Observation");
  const ElementInfo* value = obs.FindElement("value");
  ASSERT_NE(value, nullptr);
  EXPECT_TRUE(value->is_choice);
  EXPECT_EQ(value->types.size(), 11u);
  EXPECT_EQ(obs.FindElement("valueQuantity"), nullptr);

  ElementMatch m = obs.Resolve("valueQuantity");
  ASSERT_TRUE(m);
  EXPECT_EQ(m.element, value);
  EXPECT_EQ(m.type->name, "Quantity");
  EXPECT_EQ(obs.Resolve("valueDateTime").type->name, "dateTime");
  EXPECT_EQ(obs.Resolve("valueCodeableConcept").type->name, "CodeableConcept");
  EXPECT_FALSE(obs.Resolve("value"));
  EXPECT_FALSE(obs.Resolve("valueHumanName"));
  EXPECT_FALSE(obs.Resolve("valuequantity"));
  EXPECT_EQ(obs.Resolve("status").type->name, "code");

  const StructureInfo& ext = *FindStructure("Extension");
  EXPECT_EQ(ext.Resolve("valueBase64Binary").type->name, "base64Binary");
  EXPECT_EQ(ext.Resolve("valueReference").type->name, "Reference");
}

TEST(ModelTest, ContentReference) {
  const StructureInfo& item = *FindStructure("Questionnaire.item");
  EXPECT_EQ(item.FindElement("item")->type().name, "Questionnaire.item");
  EXPECT_EQ(FindStructure("Bundle.entry")->FindElement("link")->type().name, "Bundle.link");
  EXPECT_EQ(FindStructure("Bundle.entry")->FindElement("resource")->type().name, "Resource");
  EXPECT_EQ(FindStructure("Parameters.parameter")->FindElement("part")->type().name,
            "Parameters.parameter");
}

TEST(ModelTest, FindElementByPath) {
  const ElementInfo* family = FindElementByPath("Patient.contact.name.family");
  ASSERT_NE(family, nullptr);
  EXPECT_EQ(family->parent->name, "HumanName");
  EXPECT_EQ(family->type().name, "string");
  EXPECT_TRUE(FindElementByPath("Observation.value")->is_choice);
  EXPECT_EQ(FindElementByPath("Observation.valueQuantity.unit")->parent->name, "Quantity");
  EXPECT_EQ(FindElementByPath("Questionnaire.item.item.item.linkId")->min, 1);
  EXPECT_EQ(FindElementByPath("Patient"), nullptr);
  EXPECT_EQ(FindElementByPath("Patient.nothing"), nullptr);
  EXPECT_EQ(FindElementByPath("Observation.value.unit"), nullptr);
  EXPECT_EQ(FindElementByPath("Nope.id"), nullptr);
  EXPECT_EQ(FindElementByPath("Patient."), nullptr);
}

TEST(ModelTest, ConcurrentFirstUse) {
  // The registry is built once even when many threads ask at the same time.
  std::vector<std::thread> threads;
  std::vector<const StructureInfo*> found(8);
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&found, i] { found[i] = FindStructure("Observation"); });
  for (auto& t : threads) t.join();
  for (const StructureInfo* s : found) EXPECT_EQ(s, found[0]);
}

}  // namespace
}  // namespace fhirstone::fhir
