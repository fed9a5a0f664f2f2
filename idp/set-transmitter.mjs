// A Shared Signals transmitter's signing side, for sso-sidecar's tests: signs Security
// Event Tokens (RFC 8417) with `jose` (not the sidecar's JWT library) and a fresh ES256 key,
// and prints one JSON line {"jwks": {...}, "tokens": [...]} with the public key to serve at
// the transmitter's jwks_uri.
//
// Usage: node set-transmitter.mjs '{"tokens": [{"claims": {...}, "typ": "secevent+jwt",
//   "foreignKey": false}]}'  (`foreignKey`: signed by another key under the same kid, as a
//   forger would; `typ` null leaves it out)
import * as jose from 'jose';

const job = JSON.parse(process.argv[2]);
const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
const forger = await jose.generateKeyPair('ES256');
const kid = 'transmitter-key-1';
const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
const tokens = [];
for (const spec of job.tokens) {
  const header = { alg: 'ES256', kid };
  if (spec.typ !== null) header.typ = spec.typ || 'secevent+jwt';
  const key = spec.foreignKey ? forger.privateKey : privateKey;
  tokens.push(await new jose.SignJWT(spec.claims).setProtectedHeader(header).sign(key));
}
console.log(JSON.stringify({ jwks: { keys: [jwk] }, tokens }));
