// Verifies an X-SSO-Assertion the way a Node backend would, with the npm `jose` library
// (not the Rust crate that signs it): keys from the sidecar's /oauth2/jwks, ES256 only,
// issuer and audience checked. Prints the claims as JSON; exits 1 with the reason if the
// assertion is not valid.
//   node verify-assertion.mjs <jwks-url> <issuer> <audience> <assertion>
import * as jose from 'jose';

const [jwksUrl, issuer, audience, assertion] = process.argv.slice(2);
try {
  const keys = jose.createRemoteJWKSet(new URL(jwksUrl));
  const { payload } = await jose.jwtVerify(assertion, keys, { issuer, audience, algorithms: ['ES256'] });
  console.log(JSON.stringify(payload));
} catch (e) {
  console.error(`${e.code || 'ERROR'}: ${e.message}`);
  process.exit(1);
}
