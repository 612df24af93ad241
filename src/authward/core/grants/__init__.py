"""Token-endpoint grants: one module per grant type (authorization_code, refresh_token,
client_credentials), plus what they share (``issuance``).

Spec: RFC 6749 §4.1, §4.4, §6; authward spec/stores.md §3.1, §3.2.7.
"""
