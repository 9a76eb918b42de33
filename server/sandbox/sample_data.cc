#include "server/sandbox/sample_data.h"

#include <cstdlib>
#include <cstdio>

#include <google/protobuf/util/json_util.h>

namespace leyr::sandbox {
namespace {

// Invented people and places; any likeness is accidental.
constexpr char kCareUnits[] = R"json({"values": [
  {"id": "cu-1", "name": "Awesome Clinic - Main Street", "type": "clinic",
   "address": {"line": "100 Main Street", "city": "Springfield", "state": "MA",
               "postalCode": "01101", "country": "US"},
   "phone": "+1-413-555-0100", "timezone": "America/New_York"},
  {"id": "cu-2", "name": "Awesome Clinic - Riverside Pediatrics", "type": "clinic",
   "address": {"line": "12 River Road", "city": "Springfield", "state": "MA",
               "postalCode": "01103", "country": "US"},
   "phone": "+1-413-555-0142", "timezone": "America/New_York"},
  {"id": "cu-3", "name": "Awesome Clinic - Telehealth", "type": "virtual",
   "phone": "+1-413-555-0199", "timezone": "America/New_York"}
]})json";

constexpr char kPatients[] = R"json({"values": [
  {"id": "p-1001", "firstName": "Maria", "lastName": "Lopez", "birthDate": "1984-03-12",
   "gender": "female", "email": "maria.lopez@example.com", "phone": "+1-413-555-0161",
   "careUnitId": "cu-1"},
  {"id": "p-1002", "firstName": "James", "lastName": "Okafor", "birthDate": "1971-11-02",
   "gender": "male", "email": "james.okafor@example.com", "phone": "+1-413-555-0177",
   "careUnitId": "cu-1"},
  {"id": "p-1003", "firstName": "Lily", "lastName": "Chen", "birthDate": "2016-06-30",
   "gender": "female", "email": "chen.family@example.com", "phone": "+1-413-555-0123",
   "careUnitId": "cu-2"}
]})json";

constexpr char kAppointments[] = R"json({"values": [
  {"id": "a-501", "patientId": "p-1001", "careUnitId": "cu-1", "date": "2026-01-05",
   "startTime": "09:00", "endTime": "09:30", "status": "booked",
   "practitioner": "Dr. Sarah Patel", "reason": "Annual physical"},
  {"id": "a-502", "patientId": "p-1002", "careUnitId": "cu-1", "date": "2026-01-05",
   "startTime": "10:15", "endTime": "10:45", "status": "booked",
   "practitioner": "Dr. Sarah Patel", "reason": "Follow-up: blood pressure"},
  {"id": "a-503", "patientId": "p-1003", "careUnitId": "cu-2", "date": "2026-01-05",
   "startTime": "14:00", "endTime": "14:20", "status": "arrived",
   "practitioner": "Dr. Tom Reyes", "reason": "Vaccination"}
]})json";

google::protobuf::ListValue Parse(const char* text) {
  google::protobuf::Struct root;
  auto status = google::protobuf::util::JsonStringToMessage(text, &root);
  if (!status.ok()) {
    // A bug in the constants above, caught by any test.
    std::fprintf(stderr, "sandbox sample data is not valid JSON\n");
    std::abort();
  }
  return root.fields().at("values").list_value();
}

}  // namespace

const google::protobuf::ListValue& SampleCareUnits() {
  static const auto* list = new google::protobuf::ListValue(Parse(kCareUnits));
  return *list;
}

const google::protobuf::ListValue& SamplePatients() {
  static const auto* list = new google::protobuf::ListValue(Parse(kPatients));
  return *list;
}

const google::protobuf::ListValue& SampleAppointments() {
  static const auto* list = new google::protobuf::ListValue(Parse(kAppointments));
  return *list;
}

}  // namespace leyr::sandbox
