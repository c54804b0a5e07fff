// Signs an id_token for negative tests: `node mint.mjs JWK_FILE|stranger KID CLAIMS_JSON`.
// With a JWK file it signs with the provider's own key; with `stranger`, with a fresh key that
// carries the same kid (a forged signature).
import { readFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, importJWK } from 'jose';

const [source, kid, claimsJson] = process.argv.slice(2);
const claims = JSON.parse(claimsJson);
const key = source === 'stranger'
  ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  : await importJWK(JSON.parse(readFileSync(source, 'utf8')), 'RS256');
const token = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(key);
process.stdout.write(token);
