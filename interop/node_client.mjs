// Drive tessera with software nobody here wrote: openid-client discovers it through RFC
// 8414 metadata and performs the password grant, refresh, introspection and revocation;
// jose verifies its access tokens with createRemoteJWKSet + jwtVerify (typ at+jwt).
// Prints one JSON object of observations; the Rust test asserts on it.
//
// Usage: node node_client.mjs '<json config>'
import * as client from 'openid-client';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const cfg = JSON.parse(process.argv[2]);
const out = {};

const config = await client.discovery(
  new URL(cfg.issuer),
  cfg.client_id,
  undefined,
  client.ClientSecretBasic(cfg.client_secret),
  { algorithm: 'oauth2', execute: [client.allowInsecureRequests] },
);
const meta = config.serverMetadata();
out.discovered_issuer = meta.issuer;
out.discovered_token_endpoint = meta.token_endpoint;

const tokens = await client.genericGrantRequest(config, 'password', {
  username: cfg.username,
  password: cfg.password,
});

const JWKS = createRemoteJWKSet(new URL(meta.jwks_uri));
const { payload, protectedHeader } = await jwtVerify(tokens.access_token, JWKS, {
  issuer: cfg.issuer,
  audience: cfg.audience,
  typ: 'at+jwt',
});
out.jose_sub = payload.sub;
out.jose_typ = protectedHeader.typ;

try {
  await jwtVerify(tokens.access_token, JWKS, { issuer: cfg.issuer, audience: 'someone-else', typ: 'at+jwt' });
  out.jose_rejects_wrong_audience = false;
} catch {
  out.jose_rejects_wrong_audience = true;
}

const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
out.rotated = refreshed.refresh_token !== tokens.refresh_token;
const intro = await client.tokenIntrospection(config, refreshed.access_token);
out.introspect_active = intro.active;
await client.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' });
out.after_revoke = await client.tokenIntrospection(config, refreshed.refresh_token);
try {
  await client.refreshTokenGrant(config, refreshed.refresh_token);
  out.refresh_after_revoke = 'accepted';
} catch (e) {
  out.refresh_after_revoke = e.error ?? String(e);
}
out.revoked_access_token = refreshed.access_token;

console.log(JSON.stringify(out));
