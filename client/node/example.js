#!/usr/bin/env node
// The whole authorization flow from Node, against a running leyr-broker:
// begin -> open the authorize page (as JSON) -> POST its approve form to the shim -> wait ->
// CallLeyr GET /api/emrs/athenapractice/care-units; then reads the broker's ErrorInfo reason
// from a failed call. Exits non-zero on any failure.
//   (cd client/node && npm ci) && LEYR_BROKER=127.0.0.1:50051 node client/node/example.js
'use strict';

const {connect, errorReason, grpc} = require('./broker.js');

const target = process.env.LEYR_BROKER || '127.0.0.1:50051';
const connection = process.env.LEYR_CONNECTION || 'athena-sandbox';

// Does what the clinician's browser does: loads the consent page and submits "approve".
async function approveInBrowser(authorizeUri) {
  const page = await (await fetch(authorizeUri, {headers: {Accept: 'application/json'}})).json();
  const answer = await fetch(page.action, {
    method: 'POST',
    headers: {'Content-Type': 'application/x-www-form-urlencoded'},
    body: new URLSearchParams(page.approve).toString(),
    redirect: 'manual',  // the shim's 303 is for the browser; do not follow it
  });
  if (answer.status !== 200 && answer.status !== 303) {
    throw new Error(`the shim answered HTTP ${answer.status}`);
  }
  return answer.status;
}

async function main() {
  const broker = connect(target);
  try {
    const begun = await broker.BeginAuthorization({connection});
    const name = begun.authorization.name;
    console.log(`begin: ${name}`);

    console.log(`shim answered HTTP ${await approveInBrowser(begun.authorize_uri)}`);

    // Long poll in 30-second slices until the authorization leaves PENDING.
    let authorization = begun.authorization;
    while (authorization.state === 'STATE_PENDING') {
      ({authorization} = await broker.WaitAuthorization(
          {name, timeout: {seconds: 30}}, {timeoutMs: 40000}));
    }
    console.log(`wait: ${authorization.state}`);
    if (authorization.state !== 'STATE_ACTIVE') return 1;

    const response = await broker.CallLeyr(
        {authorization: name, method: 'GET', path: '/api/emrs/athenapractice/care-units'});
    console.log(`CallLeyr: HTTP ${response.status_code}`);
    if (response.status_code !== 200) return 1;
    console.log(JSON.stringify(JSON.parse(response.body.toString('utf8')), null, 2).slice(0, 400));

    // Errors: match on the ErrorInfo reason, not on the message.
    try {
      await broker.GetAuthorization({name: 'authorizations/AAAAAAAAAAAAAAAAAAAAAA'});
      console.log('expected NOT_FOUND');
      return 1;
    } catch (err) {
      const reason = errorReason(err);
      console.log(`error: ${grpc.status[err.code]} reason=${reason}`);
      if (reason !== 'AUTHORIZATION_NOT_FOUND') return 1;
    }
    console.log('node example: OK');
    return 0;
  } finally {
    broker.close();
  }
}

main().then((code) => { process.exitCode = code; }, (err) => {
  console.error(`failed: ${err.code !== undefined ? grpc.status[err.code] : ''} ` +
                `reason=${errorReason(err)}: ${err.details || err.message}`);
  process.exitCode = 1;
});
