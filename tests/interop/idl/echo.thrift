// The Echo service of the interop programs: the server answers with its own ID,
// so a client can count which instance answered each call.
namespace go echo

struct EchoRequest {
    1: required string message
}

struct EchoResponse {
    1: required string message
    2: required string server_id
}

service Echo {
    EchoResponse Echo(1: EchoRequest req)
}
