#!/usr/bin/python3
"""The whole authorization flow from Python, against a running leyr-broker.

begin -> open the authorize page (as JSON) -> POST its approve form to the shim -> wait ->
CallLeyr GET /api/emrs/athenapractice/care-units. Then shows how to read the broker's
google.rpc.ErrorInfo reason from a failed call. Exits non-zero on any failure.

Needs Debian's python3-grpcio and the stubs from scripts/gen-stubs.sh:
  scripts/gen-stubs.sh build/stubs
  LEYR_PY_STUBS=build/stubs/python /usr/bin/python3 client/python/example.py --broker=127.0.0.1:50051
"""

import argparse
import json
import os
import sys
import urllib.parse
import urllib.request
import http.client

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("LEYR_PY_STUBS",
                                  os.path.join(HERE, "..", "..", "build", "stubs", "python")))

import grpc  # noqa: E402
from google.protobuf import duration_pb2  # noqa: E402
from google.rpc import error_details_pb2, status_pb2  # noqa: E402
from leyr.broker.v1 import authorization_pb2  # noqa: E402
from leyr.broker.v1 import broker_service_pb2 as pb  # noqa: E402
from leyr.broker.v1 import broker_service_pb2_grpc  # noqa: E402

Authorization = authorization_pb2.Authorization


def error_reason(err):
    """The broker's ErrorInfo reason of a failed call ("" when there is none).

    The broker sends a google.rpc.Status in the grpc-status-details-bin trailer, with one
    google.rpc.ErrorInfo in its details (python3-grpcio has no grpc_status module).
    """
    for key, value in (err.trailing_metadata() or ()):
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason
    return ""


def approve_in_browser(authorize_uri):
    """Does what the clinician's browser does: loads the consent page and submits "approve"."""
    request = urllib.request.Request(authorize_uri, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        page = json.load(response)
    form = urllib.parse.urlencode(page["approve"])
    action = urllib.parse.urlsplit(page["action"])
    # http.client rather than urllib: the shim's 303 must not be followed.
    conn = http.client.HTTPConnection(action.hostname, action.port, timeout=15)
    path = action.path + ("?" + action.query if action.query else "")
    conn.request("POST", path, body=form,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    status = conn.getresponse().status
    conn.close()
    if status not in (200, 303):
        raise RuntimeError(f"the shim answered HTTP {status}")
    return status


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default=os.environ.get("LEYR_BROKER", "127.0.0.1:50051"))
    parser.add_argument("--connection", default=os.environ.get("LEYR_CONNECTION", "athena-sandbox"))
    args = parser.parse_args()

    with grpc.insecure_channel(args.broker) as channel:
        broker = broker_service_pb2_grpc.BrokerServiceStub(channel)

        begun = broker.BeginAuthorization(
            pb.BeginAuthorizationRequest(connection=args.connection), timeout=10)
        name = begun.authorization.name
        print(f"begin: {name}")

        print(f"shim answered HTTP {approve_in_browser(begun.authorize_uri)}")

        # Long poll in 30-second slices until the authorization leaves PENDING.
        authorization = begun.authorization
        while authorization.state == Authorization.STATE_PENDING:
            authorization = broker.WaitAuthorization(
                pb.WaitAuthorizationRequest(name=name, timeout=duration_pb2.Duration(seconds=30)),
                timeout=40).authorization
        print(f"wait: {Authorization.State.Name(authorization.state)}")
        if authorization.state != Authorization.STATE_ACTIVE:
            return 1

        response = broker.CallLeyr(pb.CallLeyrRequest(
            authorization=name, method="GET", path="/api/emrs/athenapractice/care-units"),
            timeout=30)
        print(f"CallLeyr: HTTP {response.status_code}")
        if response.status_code != 200:
            return 1
        print(json.dumps(json.loads(response.body), indent=2)[:400])

        # Errors: match on the ErrorInfo reason, not on the message.
        try:
            broker.GetAuthorization(
                pb.GetAuthorizationRequest(name="authorizations/AAAAAAAAAAAAAAAAAAAAAA"), timeout=10)
            print("expected NOT_FOUND")
            return 1
        except grpc.RpcError as err:
            reason = error_reason(err)
            print(f"error: {err.code().name} reason={reason}")
            if reason != "AUTHORIZATION_NOT_FOUND":
                return 1
    print("python example: OK")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except grpc.RpcError as err:
        print(f"failed: {err.code().name} reason={error_reason(err)}: {err.details()}",
              file=sys.stderr)
        sys.exit(1)
    except Exception as err:  # pylint: disable=broad-except
        print(f"failed: {err}", file=sys.stderr)
        sys.exit(1)
