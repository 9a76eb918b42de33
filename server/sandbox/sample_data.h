#ifndef LEYR_SERVER_SANDBOX_SAMPLE_DATA_H_
#define LEYR_SERVER_SANDBOX_SAMPLE_DATA_H_

#include <google/protobuf/struct.pb.h>

namespace leyr::sandbox {

// Fixed sample records the Leyr side answers, parsed once. Each is a list of JSON objects with
// an "id" field.
const google::protobuf::ListValue& SampleCareUnits();
const google::protobuf::ListValue& SamplePatients();
const google::protobuf::ListValue& SampleAppointments();

}  // namespace leyr::sandbox

#endif  // LEYR_SERVER_SANDBOX_SAMPLE_DATA_H_
