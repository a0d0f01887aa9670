#!/bin/sh
# Mints a JWT for compute_ctl's external API, signed with an Ed25519 private
# key (PEM), with openssl alone:
#   deploy/mint-token.sh [KEY.pem [KID [SECONDS]]]
# Defaults: deploy/keys/example-private.pem, kid "example", valid 3600 s.
# The token is an admin one (scope compute_ctl:admin, audience compute): it
# is good for any compute whose JWKS holds the key. Use it as
#   curl -H "Authorization: Bearer $(deploy/mint-token.sh)" localhost:3080/status
set -eu
key=${1:-$(dirname "$0")/keys/example-private.pem}
kid=${2:-example}
ttl=${3:-3600}
b64url() { basenc --base64url | tr -d '=\n'; }
exp=$(( $(date +%s) + ttl ))
header=$(printf '{"alg":"EdDSA","typ":"JWT","kid":"%s"}' "$kid" | b64url)
claims=$(printf '{"scope":"compute_ctl:admin","aud":["compute"],"exp":%s}' "$exp" | b64url)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
printf '%s.%s' "$header" "$claims" > "$tmp"
signature=$(openssl pkeyutl -sign -rawin -inkey "$key" -in "$tmp" | b64url)
printf '%s.%s.%s\n' "$header" "$claims" "$signature"
