"""Personal API tokens: named, listed, revoked and expired, stored hashed. The model, its
services, the authentication class DRF uses, and the token page and API live here."""
