// A small promise-based client of leyr.broker.v1.BrokerService for Node, on @grpc/grpc-js.
// The .proto files are the contract: @grpc/proto-loader reads them from protos/ at run time, so
// there is no generated code to keep in step.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTO_ROOT = process.env.LEYR_PROTO_ROOT || path.join(__dirname, '..', '..', 'protos');

// Loads leyr.broker.v1 (enums as their names, 64-bit integers as strings, defaults filled in).
function loadPackage() {
  const definition = protoLoader.loadSync('leyr/broker/v1/broker_service.proto', {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    enums: String,
    longs: String,
    defaults: true,
  });
  return grpc.loadPackageDefinition(definition).leyr.broker.v1;
}

// A client whose methods return promises: await broker.GetAuthorization({name}, {timeoutMs}).
function connect(target, credentials = grpc.credentials.createInsecure()) {
  const v1 = loadPackage();
  const stub = new v1.BrokerService(target, credentials);
  const client = {close: () => stub.close()};
  for (const method of Object.keys(v1.BrokerService.service)) {
    client[method] = (request, {timeoutMs = 30000} = {}) =>
      new Promise((resolve, reject) => {
        stub[method](request, {deadline: Date.now() + timeoutMs}, (err, response) =>
          err ? reject(err) : resolve(response));
      });
  }
  return client;
}

// The google.rpc.Status and ErrorInfo types, decoded with protobufjs from protos/google/rpc.
let rpcTypes;
function rpcStatusTypes() {
  if (!rpcTypes) {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) =>
      target.startsWith('google/protobuf/') ? target : path.join(PROTO_ROOT, target);
    root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto']);
    rpcTypes = {
      Status: root.lookupType('google.rpc.Status'),
      ErrorInfo: root.lookupType('google.rpc.ErrorInfo'),
    };
  }
  return rpcTypes;
}

// The broker's google.rpc.ErrorInfo reason of a failed call ('' when there is none). It travels
// as a google.rpc.Status in the grpc-status-details-bin trailer.
function errorReason(err) {
  const raw = err && err.metadata && err.metadata.get('grpc-status-details-bin')[0];
  if (!raw) return '';
  const {Status, ErrorInfo} = rpcStatusTypes();
  for (const detail of Status.decode(raw).details) {
    if (detail.type_url === 'type.googleapis.com/google.rpc.ErrorInfo' ||
        detail.typeUrl === 'type.googleapis.com/google.rpc.ErrorInfo') {
      return ErrorInfo.decode(detail.value).reason;
    }
  }
  return '';
}

module.exports = {connect, errorReason, loadPackage, grpc};
