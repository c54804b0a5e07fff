# Vault policy for the phi-vault service: least privilege.
# It may wrap and unwrap data keys with its own Transit key, and read that key's metadata
# (versions, for rewrap). It may not create, rotate, export, back up, configure or delete keys:
# operators rotate (runbooks/key-rotation.md); nobody exports.

path "transit/encrypt/secondwind-phi" {
  capabilities = ["update"]
}

path "transit/decrypt/secondwind-phi" {
  capabilities = ["update"]
}

path "transit/keys/secondwind-phi" {
  capabilities = ["read"]
}

# Keep its own token alive (renew-self, lookup-self). AppRole login itself needs no policy:
# auth/approle/login is unauthenticated and checked against the role id and secret id.
path "auth/token/renew-self" {
  capabilities = ["update"]
}

path "auth/token/lookup-self" {
  capabilities = ["read"]
}
