"""Users, roles, tokens, cookie sessions and the operators' audit log."""
