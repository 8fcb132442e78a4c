"""Drive tessera with software nobody here wrote: PyJWT (PyJWKClient) verifies its access
tokens from the JWKS URL; Authlib performs the password grant, refresh, introspection and
revocation. Prints one JSON object of observations; the Rust test asserts on it.

Usage: python_client.py '<json config>'  (base, issuer, audience, client_id, client_secret,
username, password)
"""
import json
import sys

import jwt
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError

cfg = json.loads(sys.argv[1])
base = cfg["base"]
out = {}

session = OAuth2Session(
    cfg["client_id"],
    cfg["client_secret"],
    token_endpoint_auth_method="client_secret_basic",
    revocation_endpoint_auth_method="client_secret_basic",
)
token = session.fetch_token(
    f"{base}/v1/token", grant_type="password", username=cfg["username"], password=cfg["password"]
)
out["token_type"] = token["token_type"]

# PyJWT: keys from the JWKS URL, algorithm allow-list, iss/aud/exp checked.
jwks = jwt.PyJWKClient(f"{base}/.well-known/jwks.json")
key = jwks.get_signing_key_from_jwt(token["access_token"])
header = jwt.get_unverified_header(token["access_token"])
claims = jwt.decode(
    token["access_token"],
    key.key,
    algorithms=["EdDSA", "ES256", "RS256"],
    audience=cfg["audience"],
    issuer=cfg["issuer"],
    options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
)
out["pyjwt_sub"] = claims["sub"]
out["pyjwt_typ"] = header["typ"]
out["pyjwt_alg"] = header["alg"]

# A tampered token must not verify.
parts = token["access_token"].split(".")
tampered = ".".join([parts[0], parts[1], parts[2][:-4] + ("AAAA" if not parts[2].endswith("AAAA") else "BBBB")])
try:
    jwt.decode(tampered, key.key, algorithms=[header["alg"]], audience=cfg["audience"], issuer=cfg["issuer"])
    out["pyjwt_rejects_tampered"] = False
except jwt.InvalidTokenError:
    out["pyjwt_rejects_tampered"] = True

# Authlib: refresh (rotation), introspection, revocation.
refreshed = session.refresh_token(f"{base}/v1/token", refresh_token=token["refresh_token"])
out["rotated"] = refreshed["refresh_token"] != token["refresh_token"]
intro = session.introspect_token(f"{base}/v1/introspect", token=refreshed["access_token"]).json()
out["introspect_active"] = intro["active"]
out["introspect_username"] = intro.get("username")
session.revoke_token(f"{base}/v1/revoke", token=refreshed["refresh_token"], token_type_hint="refresh_token")
out["after_revoke"] = session.introspect_token(f"{base}/v1/introspect", token=refreshed["refresh_token"]).json()
try:
    session.refresh_token(f"{base}/v1/token", refresh_token=refreshed["refresh_token"])
    out["refresh_after_revoke"] = "accepted"
except OAuthError as e:
    out["refresh_after_revoke"] = e.error
out["revoked_access_token"] = refreshed["access_token"]

print(json.dumps(out))
