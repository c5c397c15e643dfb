"""Data at rest and identity: vaults, keys, access policy, audit trail, TLS material, node keys and app signing. No Flower, no differential privacy."""
