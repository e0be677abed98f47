"""The account service (phase 1): tokens, API keys, collaborators, membership, audit trail."""
