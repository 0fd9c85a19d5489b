"""Users, roles, tokens and the audit trail: who may do what, and a record of what was done."""
