#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/<target>/) from the provider pages and RFC examples.

Run from anywhere: python3 fuzz/make_corpus.py. The files are kept in the repository; this
script documents where each came from and regenerates them.
"""
import os, struct, glob

ROOT = os.path.dirname(os.path.abspath(__file__))
KEYS = os.path.join(ROOT, "..", "crates", "jwt-assertion", "tests", "keys")
JSON, FORM, HTML, TEXT = 0, 2, 3, 4

def response(ct, status, body, lo):
    # common.rs: byte 0 = content type index, bytes 1-2 = status offset (big endian), body.
    return bytes([ct]) + struct.pack(">H", status - lo) + body.encode()

def write(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

DATALOY_JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0." + "fXClgZe2pFQBxPqARz9xfWlrFnc1El34ZPyRLoGlLIJLiE0NvOA1JLWycXCNo9N7AenAKEbj-gb2eW4TnpAiidDRmMV3m36UCuRAxWdVcvsRaJxXcquf79wAgEoEKriJklCxwKOnOyngbTZ2vDNim0nrw6"
tokens = {
    # The first and second provider pages.
    "page0_bearer": (JSON, 200, '{\n"access_token": "ACCESS-TOKEN",\n    "token_type": "Bearer",\n    "expires_in": 86399\n}'),
    # Dataloy: a JWT, expires_in 86400.
    "page2_dataloy": (JSON, 200, '{"access_token": "%s", "expires_in": 86400, "token_type": "Bearer"}' % DATALOY_JWT),
    # Anypoint: lowercase bearer, refresh token, expires_in as a string.
    "page3_anypoint": (JSON, 200, '{"access_token" : "a", "refresh_token" : "r", "expires_in" : "3600", "token_type" : "bearer"}'),
    # Anypoint Exchange: no expires_in.
    "page4_exchange": (JSON, 200, '{"access_token": "YOUR_BEARER_TOKEN", "token_type": "bearer"}'),
    # RFC 6749 §5.1.
    "rfc6749_5_1": (JSON, 200, '{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"example","expires_in":3600,"refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA","example_parameter":"example_value"}'),
    # RFC 8693 §2.3 token exchange.
    "rfc8693": (JSON, 200, '{"access_token":"eyJhbGciOiJFUzI1NiIsImtpZCI6IjcyIn0.eyJhdWQiOiJ1cm4iLCJpc3MiOiJodHRwcyJ9.x","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"N_A","expires_in":60}'),
    "openid": (JSON, 200, '{"access_token":"a","token_type":"Bearer","expires_in":3600,"id_token":"eyJ.eyJ.sig","scope":["openid","profile"]}'),
    "form": (FORM, 200, "access_token=a&token_type=bearer&expires_in=3600"),
}
for name, (ct, status, body) in tokens.items():
    write("token_response", name, response(ct, status, body, 100))

errors = {
    "rfc6749_5_2": (JSON, 400, '{"error":"invalid_request"}'),
    "invalid_client": (JSON, 401, '{"error":"invalid_client","error_description":"Client authentication failed","error_uri":"https://as.example/doc"}'),
    "dataloy_401": (JSON, 401, '{"statusCode": 401, "statusText": "Unauthorized", "message": "Token expired.", "date": "2019-11-13T06:26:01", "statusFamily": "CLIENT_ERROR"}'),
    "html_502": (HTML, 502, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "text_503": (TEXT, 503, "Service Unavailable"),
    "slow_down": (JSON, 429, '{"error":"slow_down"}'),
}
for name, (ct, status, body) in errors.items():
    write("error_response", name, response(ct, status, body, 400))
    write("token_response", name, response(ct, status, body, 100))

challenges = [
    'Bearer realm="example"',  # RFC 6750 §3
    'Bearer realm="example", error="invalid_token", error_description="The access token expired"',
    'Bearer error="insufficient_scope", scope="read write"',
    'Basic realm="token"\x00Bearer realm="api", error="invalid_token"',
    'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"',  # RFC 9110 §11.6.1
    'Bearer abc.def==',
]
for i, c in enumerate(challenges):
    write("www_authenticate", "challenge%d" % i, c)

callbacks = {
    "rfc6749_4_1_2": "code=SplxlOBeZQQYbYS6WxSbIA&state=xyz",
    "error": "error=access_denied&error_description=The+user+said+no&state=xyz",
    "iss": "code=c&state=xyz&iss=https%3A%2F%2Fas.example",
    "duplicate": "code=a&code=b&state=xyz",
    "fragment": "code=a&state=xyz#frag",
}
for name, q in callbacks.items():
    write("callback", name, q)

write("classifier", "dataloy", b"\x00" + response(JSON, 401, errors["dataloy_401"][2], 400))
write("classifier", "challenge", b'Bearer error="invalid_token"\x00' + response(TEXT, 401, "", 400))
write("classifier", "scope", b'Bearer error="insufficient_scope"\x00' + response(JSON, 403, "{}", 400))

introspections = {
    "rfc7662_2_2": '{"active": true, "client_id": "l238j323ds-23ij4", "username": "jdoe", "scope": "read write dolphin", "sub": "Z5O3upPC88QrAjx00dis", "aud": "https://protected.example.net/resource", "iss": "https://server.example.com/", "exp": 1419356238, "iat": 1419350238, "extension_field": "twenty-seven"}',
    "inactive": '{"active": false}',
    "strings": '{"active": "true", "client_id": "c", "scope": ["read"], "aud": ["https://api"], "exp": "1800000000", "nbf": 1600000000.5, "token_type": "bearer"}',
}
for name, body in introspections.items():
    write("introspection", name, response(JSON, 200, body, 100))

discovery = {
    "rfc8414_3_2": '{"issuer":"https://as.example","authorization_endpoint":"https://as.example/authorize","token_endpoint":"https://as.example/token","token_endpoint_auth_methods_supported":["client_secret_basic","private_key_jwt"],"userinfo_endpoint":"https://as.example/userinfo","jwks_uri":"https://as.example/jwks.json","registration_endpoint":"https://as.example/register","scopes_supported":["openid","profile"],"response_types_supported":["code","code token"],"service_documentation":"http://as.example/doc"}',
    "oidc": '{"issuer":"https://as.example/t1","authorization_endpoint":"https://as.example/t1/auth","token_endpoint":"https://as.example/t1/token","introspection_endpoint":"https://as.example/t1/token/introspection","revocation_endpoint":"https://as.example/t1/token/revocation","grant_types_supported":["authorization_code","client_credentials","refresh_token","urn:ietf:params:oauth:grant-type:jwt-bearer"],"authorization_response_iss_parameter_supported":true,"code_challenge_methods_supported":["S256"]}',
}
for name, body in discovery.items():
    write("discovery", name, response(JSON, 200, body, 100))

# Key files: PEM with the algorithm byte (0..4: RS256, PS256, ES256, ES384, EdDSA), DER with
# the high bit set.
alg_for = {"rsa": 0, "rfc7515": 0, "rsapss": 1, "p256": 2, "p384": 3, "ed25519": 4, "x25519": 4, "secp256k1": 2, "openssh": 4}
for path in sorted(glob.glob(os.path.join(KEYS, "*"))):
    name = os.path.basename(path)
    alg = next(v for k, v in alg_for.items() if name.startswith(k))
    data = open(path, "rb").read()
    if name.endswith(".der"):
        write("key_loading", name, bytes([0x80 | alg]) + data)
        write("jwk_output", name, data)
    else:
        write("key_loading", name, bytes([alg]) + data)
write("jwk_output", "seed_zero", bytes(32))
write("jwk_output", "rfc8037_a1_seed", bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))

write("bearer_extraction", "rfc6750_2_1", b"Bearer mF_9.B5f-4.1JqM")
write("bearer_extraction", "two_methods", b"Bearer mF_9.B5f-4.1JqM\x00\x00access_token=mF_9.B5f-4.1JqM\x00access_token=x")
write("bearer_extraction", "lowercase", b"bearer YOUR_BEARER_TOKEN")
write("bearer_extraction", "basic", b"Basic fn5+Q2xpZW50fn5+OmNsaWVudElEfj9+Y2xpZW50U2VjcmV0")

write("contracts_json", "export", '{"contracts": [{"client_id": "app-1", "api": "orders", "scopes": ["orders:read"]}, {"client_id": "app-2", "api": "billing"}]}')
