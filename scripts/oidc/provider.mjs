// A real OpenID Connect provider (npm `oidc-provider`) for the login tests and the embedded
// default. It listens on 127.0.0.1 only. There is no login page: an interaction signs in the
// account named by the authorization request's `login_hint` and grants the requested scopes,
// so a client that follows redirects reaches `redirect_uri?code=…` without a browser. The device
// authorization flow (RFC 8628) is on: its pages are plain forms a test can post, and the
// device authorization request's `login_hint` names the account the same way.
//
// Environment: OIDC_PORT, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI, and
// OIDC_JWK_FILE, where the signing key (a private RS256 JWK) is written with mode 0600 so that
// negative tests can mint id_tokens the provider itself could have signed. With
// OIDC_DEVICE_CLIENT_ID and OIDC_DEVICE_CLIENT_SECRET the device flow has a client of its own
// (as Google requires) and the web client is granted no device codes.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const need = (name) => {
  const value = process.env[name];
  if (!value) { console.error(`${name} is required`); process.exit(2); }
  return value;
};
const port = Number(need('OIDC_PORT'));
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: `test-${randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' };
writeFileSync(need('OIDC_JWK_FILE'), JSON.stringify(jwk), { mode: 0o600 });

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const deviceClientId = process.env.OIDC_DEVICE_CLIENT_ID;
const clients = [{
  client_id: need('OIDC_CLIENT_ID'),
  client_secret: need('OIDC_CLIENT_SECRET'),
  redirect_uris: need('OIDC_REDIRECT_URI').split(','),
  grant_types: deviceClientId ? ['authorization_code'] : ['authorization_code', DEVICE_GRANT],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
}];
if (deviceClientId) {
  clients.push({
    client_id: deviceClientId,
    client_secret: need('OIDC_DEVICE_CLIENT_SECRET'),
    redirect_uris: [],
    grant_types: [DEVICE_GRANT],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_basic',
  });
}

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: {
      enabled: true,
      async userCodeInputSource(ctx, form, out, err) {
        ctx.body = `<!DOCTYPE html><html><body>${err ? '<p id="error">code not accepted</p>' : ''}${form}</body></html>`;
      },
      async userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
        ctx.body = `<!DOCTYPE html><html><body><p>Confirm the code <code>${userCode}</code></p>${form}</body></html>`;
      },
      async successSource(ctx) {
        ctx.body = '<!DOCTYPE html><html><body><p id="signed-in">Signed in: return to your device.</p></body></html>';
      },
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.org`, email_verified: true, name: `Test ${id}` };
      },
    };
  },
});

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { prompt, params, session } = details;
  let result;
  if (prompt.name === 'login') {
    if (!params.login_hint) { ctx.status = 400; ctx.body = 'login_hint is required'; return; }
    result = { login: { accountId: String(params.login_hint) } };
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    result = { consent: { grantId: await grant.save() } };
  } else {
    ctx.status = 400; ctx.body = `unexpected prompt ${prompt.name}`; return;
  }
  const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.redirect(redirectTo);
});

provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider ready at ${issuer}`));
